/*
 * runcmd.c: appliance-parent run / stop / help-config (runcmd.h).
 */
#include "parent/runcmd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "appliance/channel.h"
#include "appliance/hex.h"
#include "appliance/log.h"
#include "parent/blobstore.h"
#include "parent/control.h"
#include "parent/devca.h"
#include "parent/launch.h"
#include "parent/pconfig.h"
#include "parent/proxy.h"

extern char **environ;

enum { P_OK = 0, P_FAIL = 1, P_USAGE = 2 };

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;
	if (write(sig_pipe[1], &c, 1) < 0) {
		/* full: a stop is pending */
	}
	errno = saved;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The running services. */
struct services {
	struct pconfig *cfg;
	struct blobstore *store;
	struct control *ctl;
	struct proxy *proxy;
	int ctl_fd, egress_fd;
	int stop[2]; /* services stop pipe: written once at the end */
	pthread_t ctl_thr, proxy_thr;
	int ctl_started, proxy_started;
	/* dev: the NSM emulator of the current enclave, its own process (`appliance-parent
	 * nsm-emulator`): like the Nitro hypervisor's NSM it outlives a parent restart */
	pid_t nsm_pid;
	unsigned long long nsm_start;
	int nsm_child; /* spawned by this process (waitpid), else adopted (poll) */
	char nsm_path[PCONFIG_STR_MAX + 32];
};

static void *ctl_main(void *arg)
{
	struct services *s = arg;
	int r = control_serve(s->ctl, s->ctl_fd, s->stop[0]);
	if (r)
		log_error("event=control_stopped reason=%s", app_errname(r));
	return NULL;
}

static void *proxy_main(void *arg)
{
	struct services *s = arg;
	int r = proxy_serve(s->proxy, s->egress_fd, s->stop[0]);
	if (r)
		log_error("event=egress_stopped reason=%s", app_errname(r));
	return NULL;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PCONFIG_STR_MAX + 32];
	size_t n = strlen(path);
	if (n >= sizeof tmp)
		return APP_EINVAL;
	memcpy(tmp, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (tmp[i] == '/' || tmp[i] == 0) {
			char c = tmp[i];
			tmp[i] = 0;
			if (mkdir(tmp, mode) != 0 && errno != EEXIST)
				return APP_EIO;
			tmp[i] = c;
		}
	}
	return 0;
}

/* proc_starttime: field 22 of /proc/PID/stat (clock ticks since boot), 0 if unreadable. */
static unsigned long long proc_starttime(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* after ") " come fields 3.. ; starttime is field 22 */
	int field = 2;
	for (char *q = p + 1; *q; q++) {
		if (*q == ' ') {
			field++;
			if (field == 22)
				return strtoull(q + 1, NULL, 10);
		}
	}
	return 0;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* pid_alive: the process pid still runs and is the one started at `start` (not a reused pid). */
static int pid_alive(pid_t pid, unsigned long long start)
{
	return pid > 1 && kill(pid, 0) == 0 && proc_starttime(pid) == start;
}

/* nsm_stop: ends the emulator process (SIGTERM, SIGKILL after 2 s). */
static void nsm_stop(struct services *s)
{
	if (s->nsm_pid <= 0)
		return;
	kill(s->nsm_pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (s->nsm_child ? waitpid(s->nsm_pid, NULL, WNOHANG) == s->nsm_pid : !pid_alive(s->nsm_pid, s->nsm_start))
			goto done;
		sleep_ms(20);
	}
	kill(s->nsm_pid, SIGKILL);
	if (s->nsm_child)
		waitpid(s->nsm_pid, NULL, 0);
done:
	log_info("event=nsm_emulator_stop pid=%d", (int)s->nsm_pid);
	s->nsm_pid = 0;
	s->nsm_start = 0;
	s->nsm_child = 0;
}

/*
 * nsm_spawn: `appliance-parent nsm-emulator` (this binary) serving s->nsm_path
 * with PCR0/1/2 = pcr and the dev CA; waits (10 s) for its ready line.
 */
static int nsm_spawn(struct services *s, const uint8_t pcr[3][48])
{
	char p[3][100];
	const char *argv[16];
	int n = 0, pfd[2], r = APP_EIO;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	for (int i = 0; i < 3; i++) {
		p[i][0] = (char)('0' + i);
		p[i][1] = '=';
		hex_encode(p[i] + 2, pcr[i], 48);
	}
	argv[n++] = "appliance-parent";
	argv[n++] = "nsm-emulator";
	argv[n++] = "--socket";
	argv[n++] = s->nsm_path;
	argv[n++] = "--ca";
	argv[n++] = s->cfg->ca_dir;
	for (int i = 0; i < 3; i++) {
		argv[n++] = "--pcr";
		argv[n++] = p[i];
	}
	if (s->cfg->instance_id[0]) {
		argv[n++] = "--instance-id";
		argv[n++] = s->cfg->instance_id;
	}
	argv[n] = NULL;
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return APP_EIO;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	int e = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (e != 0) {
		close(pfd[0]);
		return APP_EIO;
	}
	char line[512];
	size_t got = 0;
	int64_t deadline = now_ms() + 10000;
	while (got < sizeof line - 1 && !memchr(line, '\n', got)) {
		struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
		int64_t left = deadline - now_ms();
		if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
			break;
		ssize_t k = read(pfd[0], line + got, sizeof line - 1 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(pfd[0]);
	line[got] = 0;
	if (strncmp(line, "nsm-emulator ready", 18) != 0) {
		log_error("event=nsm_emulator_failed reason=\"no ready line\"");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return r;
	}
	s->nsm_pid = pid;
	s->nsm_start = proc_starttime(pid);
	s->nsm_child = 1;
	log_info("event=nsm_emulator_start pid=%d socket=%s", (int)pid, s->nsm_path);
	return 0;
}

/* The enclave record of a dev launch (STATE/run/enclave.state), for adoption after a parent restart. */
struct enclave_rec {
	pid_t pid;
	unsigned long long start;
	uint8_t pcr[3][48];
	pid_t nsm_pid; /* its NSM emulator process */
	unsigned long long nsm_start;
};

static int rec_path(char *out, size_t cap, const struct pconfig *c)
{
	int k = snprintf(out, cap, "%s/run/enclave.state", c->state_dir);
	return k < 0 || (size_t)k >= cap ? APP_EINVAL : 0;
}

static void rec_save(const struct pconfig *c, const struct enclave_rec *r)
{
	char path[PCONFIG_STR_MAX + 32], tmp[PCONFIG_STR_MAX + 40], hx[3][97];
	if (rec_path(path, sizeof path, c) != 0)
		return;
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	for (int i = 0; i < 3; i++)
		hex_encode(hx[i], r->pcr[i], 48);
	FILE *f = fopen(tmp, "we");
	if (!f)
		return;
	fprintf(f, "%d %llu %s %s %s %d %llu\n", (int)r->pid, r->start, hx[0], hx[1], hx[2], (int)r->nsm_pid,
		r->nsm_start);
	if (fflush(f) == 0 && fsync(fileno(f)) == 0 && fclose(f) == 0) {
		if (rename(tmp, path) != 0)
			unlink(tmp);
	} else {
		fclose(f);
		unlink(tmp);
	}
}

static void rec_remove(const struct pconfig *c)
{
	char path[PCONFIG_STR_MAX + 32];
	if (rec_path(path, sizeof path, c) == 0)
		unlink(path);
}

/* rec_load: 0 when a recorded enclave is still running (same pid and start time). */
static int rec_load(const struct pconfig *c, struct enclave_rec *r)
{
	char path[PCONFIG_STR_MAX + 32], hx[3][100];
	int pid = 0, npid = 0;
	if (rec_path(path, sizeof path, c) != 0)
		return APP_ENOENT;
	FILE *f = fopen(path, "re");
	if (!f)
		return APP_ENOENT;
	int n = fscanf(f, "%d %llu %98s %98s %98s %d %llu", &pid, &r->start, hx[0], hx[1], hx[2], &npid, &r->nsm_start);
	fclose(f);
	if (n != 7 || pid <= 1)
		return APP_EPARSE;
	r->nsm_pid = npid;
	for (int i = 0; i < 3; i++)
		if (hex_decode(r->pcr[i], 48, hx[i], strlen(hx[i]), 1) != 0)
			return APP_EPARSE;
	r->pid = pid;
	if (!pid_alive(pid, r->start))
		return APP_ENOTFOUND;
	return 0;
}

/* The supervised enclave. */
struct sup {
	struct services *s;
	pid_t pid;        /* dev: running enclave, -1 none */
	int adopted;      /* not our child: poll it */
	unsigned long long start;
	int64_t started_ms;
	unsigned backoff_ms;
	int64_t restart_at;
	struct launch_image img;
	char nitro_id[80]; /* nitro: EnclaveID */
	uint64_t launches;
};

static const char *const pass_env[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TZ", "APPLIANCE_LOG_LEVEL",
				       "APPLIANCE_PROBE_RELAY_CA"};

static int dev_launch(struct sup *u)
{
	struct services *s = u->s;
	struct pconfig *c = s->cfg;
	char env_ctl[PCONFIG_STR_MAX + 64], env_eg[PCONFIG_STR_MAX + 64], env_nsm[PCONFIG_STR_MAX + 96];
	char *env[LAUNCH_ENV_MAX];
	size_t nenv = 0;
	const char *why = "";
	int ns = 0, r;
	launch_image_clear(&u->img);
	if ((r = launch_image_load(&u->img, c->binary, c->config[0] ? c->config : NULL)) != 0) {
		log_error("event=enclave_image_failed binary=%s reason=%s", c->binary, app_errname(r));
		return r;
	}
	nsm_stop(s);
	if ((r = nsm_spawn(s, u->img.pcr)) != 0)
		return r;
	snprintf(env_ctl, sizeof env_ctl, "%s=%s", CHANNEL_ENV_CONTROL, c->control);
	snprintf(env_eg, sizeof env_eg, "%s=%s", CHANNEL_ENV_EGRESS, c->egress);
	snprintf(env_nsm, sizeof env_nsm, "%s=unix:%s", CHANNEL_ENV_NSM, s->nsm_path);
	env[nenv++] = env_ctl;
	env[nenv++] = env_eg;
	env[nenv++] = env_nsm;
	env[nenv++] = (char *)"PATH=/usr/local/bin:/usr/bin:/bin";
	for (size_t i = 0; i < sizeof pass_env / sizeof pass_env[0]; i++) {
		const char *v = getenv(pass_env[i]);
		static char bufs[8][512];
		if (v && nenv < LAUNCH_ENV_MAX) {
			int k = snprintf(bufs[i], sizeof bufs[i], "%s=%.480s", pass_env[i], v);
			if (k > 0 && (size_t)k < sizeof bufs[i])
				env[nenv++] = bufs[i];
		}
	}
	struct launch_spec spec = {.img = &u->img, .argv0 = "appliance-enclave", .args = c->args, .nargs = c->nargs,
				   .env = env, .nenv = nenv, .full = c->full_namespaces};
	pid_t pid = -1;
	if ((r = launch_dev(&pid, &ns, &why, &spec)) != 0) {
		log_error("event=enclave_launch_failed reason=%s errno=%d%s", app_errname(r), errno,
			  r == APP_EREFUSED ? " detail=\"no new network namespace (unshare needs CAP_SYS_ADMIN)\"" : "");
		return r;
	}
	if (why[0])
		log_warn("event=namespaces_fallback used=net reason=\"%s\"", why);
	char p[3][97];
	for (int i = 0; i < 3; i++)
		hex_encode(p[i], u->img.pcr[i], 48);
	u->pid = pid;
	u->adopted = 0;
	u->start = proc_starttime(pid);
	u->started_ms = now_ms();
	u->launches++;
	log_info("event=enclave_start mode=dev pid=%d namespaces=%s%s%s pcr0=%s pcr1=%s pcr2=%s", (int)pid,
		 ns & LAUNCH_NS_NET ? "net" : "", ns & LAUNCH_NS_MOUNT ? ",mount" : "", ns & LAUNCH_NS_PID ? ",pid" : "",
		 p[0], p[1], p[2]);
	struct enclave_rec rec = {.pid = pid, .start = u->start, .nsm_pid = s->nsm_pid, .nsm_start = s->nsm_start};
	memcpy(rec.pcr, u->img.pcr, sizeof rec.pcr);
	rec_save(c, &rec);
	return 0;
}

/* run_capture: runs argv (PATH search), its stdout into out[0..cap). Returns the exit status or -1. */
static int run_capture(const char *const *argv, char *out, size_t cap, size_t *len)
{
	int pfd[2];
	pid_t pid;
	posix_spawn_file_actions_t fa;
	*len = 0;
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	int e = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (e != 0) {
		close(pfd[0]);
		return -1;
	}
	for (;;) {
		ssize_t k = read(pfd[0], out + *len, cap - 1 - *len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		*len += (size_t)k;
		if (*len == cap - 1)
			break;
	}
	out[*len] = 0;
	close(pfd[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int nitro_launch(struct sup *u)
{
	struct pconfig *c = u->s->cfg;
	const char *argv[LAUNCH_NITRO_ARGV_MAX];
	char bufs[3][24], out[8192];
	size_t len = 0;
	if (launch_nitro_run_argv(argv, LAUNCH_NITRO_ARGV_MAX, bufs, c->eif, c->cpu_count, c->memory_mib, c->cid,
				  c->debug_mode) < 0)
		return APP_EINVAL;
	int st = run_capture(argv, out, sizeof out, &len);
	if (st != 0 || launch_nitro_enclave_id(u->nitro_id, sizeof u->nitro_id, out, len) != 0) {
		log_error("event=enclave_launch_failed mode=nitro status=%d", st);
		return APP_EIO;
	}
	u->started_ms = now_ms();
	u->launches++;
	log_info("event=enclave_start mode=nitro enclave_id=%s cid=%u", u->nitro_id, c->cid);
	return 0;
}

/* nitro_running: 1 while `nitro-cli describe-enclaves` lists our enclave as RUNNING. */
static int nitro_running(struct sup *u)
{
	const char *argv[] = {"nitro-cli", "describe-enclaves", NULL};
	char out[16384];
	size_t len = 0;
	if (run_capture(argv, out, sizeof out, &len) != 0)
		return 1; /* cannot tell: do not restart on a tool failure */
	return strstr(out, u->nitro_id) != NULL && strstr(out, "\"RUNNING\"") != NULL;
}

/* check_exit: 1 when the enclave has exited (logged). */
static int check_exit(struct sup *u)
{
	if (u->s->cfg->mode == PCONFIG_NITRO)
		return u->nitro_id[0] && !nitro_running(u);
	if (u->pid < 0)
		return 0;
	if (u->adopted) {
		if (pid_alive(u->pid, u->start))
			return 0;
		log_warn("event=enclave_exit pid=%d adopted=1", (int)u->pid);
		return 1;
	}
	int st = 0;
	pid_t w = waitpid(u->pid, &st, WNOHANG);
	if (w == 0)
		return 0;
	if (WIFEXITED(st))
		log_warn("event=enclave_exit pid=%d status=%d", (int)u->pid, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		log_warn("event=enclave_exit pid=%d signal=%d", (int)u->pid, WTERMSIG(st));
	return 1;
}

static int launch(struct sup *u)
{
	return u->s->cfg->mode == PCONFIG_DEV ? dev_launch(u) : nitro_launch(u);
}

/* stop_enclave: notice, wait for it to flush and exit, then force. */
static void stop_enclave(struct sup *u)
{
	struct pconfig *c = u->s->cfg;
	int running = c->mode == PCONFIG_DEV ? u->pid > 0 : u->nitro_id[0] != 0;
	if (!running)
		return;
	int told = control_shutdown_notice(u->s->ctl, c->shutdown_grace_ms);
	log_info("event=enclave_shutdown_notice told=%d grace_ms=%u", told, c->shutdown_grace_ms);
	int64_t deadline = now_ms() + (told ? c->shutdown_grace_ms : 0);
	int exited = 0, bye = 0;
	while (now_ms() < deadline) {
		if (!bye && control_wait_bye(u->s->ctl, 50) == 0) {
			bye = 1;
			log_info("event=enclave_flushed");
		}
		if (check_exit(u)) {
			exited = 1;
			break;
		}
	}
	if (c->mode == PCONFIG_NITRO) {
		if (!exited) {
			const char *argv[6];
			char out[4096];
			size_t len;
			if (launch_nitro_terminate_argv(argv, 6, u->nitro_id) > 0)
				(void)run_capture(argv, out, sizeof out, &len);
			log_warn("event=enclave_terminated enclave_id=%s", u->nitro_id);
		}
		u->nitro_id[0] = 0;
		return;
	}
	if (!exited) {
		log_warn("event=enclave_kill pid=%d signal=TERM reason=\"no exit within the grace period\"", (int)u->pid);
		kill(u->pid, SIGTERM);
		int64_t d2 = now_ms() + 3000;
		while (now_ms() < d2 && !(exited = check_exit(u))) {
			struct timespec ts = {0, 20 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		if (!exited) {
			log_warn("event=enclave_kill pid=%d signal=KILL", (int)u->pid);
			kill(u->pid, SIGKILL);
			if (!u->adopted)
				waitpid(u->pid, NULL, 0);
		}
	}
	log_info("event=enclave_stopped pid=%d flushed=%d", (int)u->pid, bye);
	u->pid = -1;
	nsm_stop(u->s);
	rec_remove(c);
}

static const char run_usage[] =
	"usage: appliance-parent run --dev|--nitro --config FILE\n"
	"       appliance-parent --dev|--nitro --config FILE\n"
	"\n"
	"Runs the parent: the channel services (control: log sink, sealed-blob store,\n"
	"shutdown notice; egress: SOCKS5 proxy with the allowlist), and launches and\n"
	"supervises the enclave until SIGTERM/SIGINT (or `appliance-parent stop`).\n"
	"  --dev      the enclave binary in fresh network/mount/PID namespaces, measured\n"
	"             into PCR0/1/2, with the NSM emulator and the dev CA\n"
	"  --nitro    nitro-cli run-enclave with the EIF (vsock: parent CID 3)\n"
	"  --config   the parent's INI file (`appliance-parent help-config`)\n";

int parent_cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dev", no_argument, NULL, 'd'},     {"nitro", no_argument, NULL, 'n'},
		{"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	int mode = 0, ch, rc = P_USAGE, r, lock_fd = -1;
	char err[PCONFIG_ERR_MAX + 64];
	struct services s;
	struct sup u;
	memset(&s, 0, sizeof s);
	memset(&u, 0, sizeof u);
	s.ctl_fd = s.egress_fd = -1;
	s.stop[0] = s.stop[1] = -1;
	u.s = &s;
	u.pid = -1;
	u.img.bin_fd = u.img.cfg_fd = -1;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			mode = PCONFIG_DEV;
			break;
		case 'n':
			mode = PCONFIG_NITRO;
			break;
		case 'c':
			path = optarg;
			break;
		case 'h':
			fputs(run_usage, stdout);
			return P_OK;
		default:
			fputs(run_usage, stderr);
			return P_USAGE;
		}
	}
	if (!path || optind != argc) {
		fputs(run_usage, stderr);
		return P_USAGE;
	}
	if ((r = pconfig_load(&s.cfg, err, sizeof err, path, mode)) != 0) {
		fprintf(stderr, "appliance-parent: %s\n", err[0] ? err : app_strerror(r));
		return P_USAGE;
	}
	struct pconfig *c = s.cfg;
	log_set_level(c->log_level);
	char run_dir[PCONFIG_STR_MAX + 16], pid_path[PCONFIG_STR_MAX + 32];
	snprintf(run_dir, sizeof run_dir, "%s/run", c->state_dir);
	snprintf(pid_path, sizeof pid_path, "%s/parent.pid", run_dir);
	snprintf(s.nsm_path, sizeof s.nsm_path, "%s/nsm.sock", run_dir);
	if (mkdir_p(c->state_dir, 0700) != 0 || mkdir_p(run_dir, 0700) != 0) {
		fprintf(stderr, "appliance-parent: cannot create %s\n", run_dir);
		goto out;
	}
	/* one parent per state directory */
	lock_fd = open(pid_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
		fprintf(stderr, "appliance-parent: another parent runs with state_dir %s (%s)\n", c->state_dir, pid_path);
		rc = P_FAIL;
		goto out;
	}
	{
		char pb[32];
		int k = snprintf(pb, sizeof pb, "%d\n", (int)getpid());
		if (ftruncate(lock_fd, 0) != 0 || write(lock_fd, pb, (size_t)k) != k) {
			fprintf(stderr, "appliance-parent: cannot write %s\n", pid_path);
			goto out;
		}
	}
	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0 || pipe2(s.stop, O_CLOEXEC) != 0)
		goto out;
	{
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_RESTART;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		signal(SIGPIPE, SIG_IGN);
	}
	/* services */
	struct blobstore_config bc = {.dir = c->blob_dir, .max_bytes = c->blob_max_bytes, .max_blobs = c->blob_max_blobs,
				      .max_blob = (size_t)c->blob_max_blob};
	struct control_config cc;
	control_config_default(&cc);
	cc.log_line_max = c->log_line_max;
	cc.log_rate = c->log_rate;
	cc.log_burst = c->log_burst;
	struct channel_addr ca_ctl, ca_eg;
	if ((r = blobstore_open(&s.store, &bc)) != 0 || (r = control_new(&s.ctl, &cc, s.store)) != 0 ||
	    (r = proxy_new(&s.proxy, &c->proxy)) != 0) {
		fprintf(stderr, "appliance-parent: services: %s\n", app_strerror(r));
		goto out;
	}
	if (channel_addr_parse(&ca_ctl, c->control) != 0 || channel_addr_parse(&ca_eg, c->egress) != 0 ||
	    (r = channel_listen(&ca_ctl, 16, &s.ctl_fd)) != 0 || (r = channel_listen(&ca_eg, 128, &s.egress_fd)) != 0) {
		fprintf(stderr, "appliance-parent: cannot listen on %s / %s: %s\n", c->control, c->egress,
			app_strerror(r));
		rc = P_FAIL;
		goto out;
	}
	if (pthread_create(&s.ctl_thr, NULL, ctl_main, &s) != 0)
		goto out;
	s.ctl_started = 1;
	if (pthread_create(&s.proxy_thr, NULL, proxy_main, &s) != 0)
		goto out;
	s.proxy_started = 1;
	log_info("event=parent_start mode=%s control=%s egress=%s allow_rules=%zu pid=%d",
		 c->mode == PCONFIG_DEV ? "dev" : "nitro", c->control, c->egress, c->proxy.nrules, (int)getpid());
	if (c->mode == PCONFIG_DEV) {
		char rootp[PCONFIG_STR_MAX + 16];
		snprintf(rootp, sizeof rootp, "%s/%s", c->ca_dir, DEVCA_ROOT_KEY_FILE);
		if (access(rootp, F_OK) != 0 && (r = devca_create(c->ca_dir, 0)) != 0 && r != APP_EEXIST) {
			fprintf(stderr, "appliance-parent: dev CA %s: %s\n", c->ca_dir, app_strerror(r));
			goto out;
		}
		struct enclave_rec rec;
		if (rec_load(c, &rec) == 0) {
			/* a parent restart: the enclave kept running, as it would on Nitro, and so did its NSM */
			if (pid_alive(rec.nsm_pid, rec.nsm_start)) {
				s.nsm_pid = rec.nsm_pid;
				s.nsm_start = rec.nsm_start;
				s.nsm_child = 0;
			} else if ((r = nsm_spawn(&s, rec.pcr)) != 0) {
				goto out;
			} else {
				rec.nsm_pid = s.nsm_pid;
				rec.nsm_start = s.nsm_start;
				rec_save(c, &rec);
			}
			u.pid = rec.pid;
			u.start = rec.start;
			u.adopted = 1;
			u.started_ms = now_ms();
			log_info("event=enclave_adopted pid=%d", (int)rec.pid);
		}
	}
	printf("appliance-parent ready mode=%s control=%s egress=%s\n", c->mode == PCONFIG_DEV ? "dev" : "nitro",
	       c->control, c->egress);
	fflush(stdout);
	/* supervision */
	u.backoff_ms = c->restart_min_ms;
	if (u.pid < 0 && launch(&u) != 0) {
		u.restart_at = now_ms() + u.backoff_ms;
		u.backoff_ms = u.backoff_ms * 2 > c->restart_max_ms ? c->restart_max_ms : u.backoff_ms * 2;
	}
	for (;;) {
		struct pollfd pf = {.fd = sig_pipe[0], .events = POLLIN};
		int k = poll(&pf, 1, c->mode == PCONFIG_NITRO ? 5000 : 100);
		if (k > 0) {
			char b[16];
			ssize_t n = read(sig_pipe[0], b, sizeof b);
			log_info("event=parent_stop signal=%d", n > 0 ? b[0] : 0);
			break;
		}
		int64_t now = now_ms();
		int running = c->mode == PCONFIG_DEV ? u.pid > 0 : u.nitro_id[0] != 0;
		if (running && check_exit(&u)) {
			if (now - u.started_ms >= (int64_t)c->restart_reset_s * 1000)
				u.backoff_ms = c->restart_min_ms;
			u.pid = -1;
			u.nitro_id[0] = 0;
			nsm_stop(&s);
			rec_remove(c);
			u.restart_at = now + u.backoff_ms;
			log_info("event=enclave_restart_scheduled in_ms=%u", u.backoff_ms);
			u.backoff_ms = u.backoff_ms * 2 > c->restart_max_ms ? c->restart_max_ms : u.backoff_ms * 2;
			continue;
		}
		if (!running && now >= u.restart_at && launch(&u) != 0) {
			u.restart_at = now + u.backoff_ms;
			u.backoff_ms = u.backoff_ms * 2 > c->restart_max_ms ? c->restart_max_ms : u.backoff_ms * 2;
		}
	}
	stop_enclave(&u);
	rc = P_OK;
out:
	if (s.stop[1] >= 0 && write(s.stop[1], "x", 1) < 0) {
		/* the services see the pipe */
	}
	if (s.ctl_started)
		pthread_join(s.ctl_thr, NULL);
	if (s.proxy_started)
		pthread_join(s.proxy_thr, NULL);
	if (u.pid < 0)
		nsm_stop(&s); /* an enclave still running (startup failure after adoption) keeps its NSM */
	if (s.ctl_fd >= 0)
		close(s.ctl_fd);
	if (s.egress_fd >= 0)
		close(s.egress_fd);
	if (s.cfg) {
		struct channel_addr a;
		if (channel_addr_parse(&a, s.cfg->control) == 0 && a.kind == CHANNEL_UNIX && s.ctl_fd >= 0)
			unlink(a.path);
		if (channel_addr_parse(&a, s.cfg->egress) == 0 && a.kind == CHANNEL_UNIX && s.egress_fd >= 0)
			unlink(a.path);
	}
	if (s.proxy) {
		struct proxy_stats ps;
		proxy_get_stats(s.proxy, &ps);
		log_info("event=egress_stats accepted=%llu allowed=%llu denied=%llu malformed=%llu failed=%llu busy=%llu",
			 (unsigned long long)ps.accepted, (unsigned long long)ps.allowed, (unsigned long long)ps.denied,
			 (unsigned long long)ps.malformed, (unsigned long long)ps.failed, (unsigned long long)ps.busy);
	}
	if (s.ctl) {
		struct control_stats cs;
		control_get_stats(s.ctl, &cs);
		log_info("event=control_stats hellos=%llu malformed=%llu log_lines=%llu log_dropped=%llu puts=%llu",
			 (unsigned long long)cs.hellos, (unsigned long long)cs.malformed, (unsigned long long)cs.log_lines,
			 (unsigned long long)cs.log_dropped, (unsigned long long)cs.puts);
	}
	launch_image_clear(&u.img);
	control_free(s.ctl);
	proxy_free(s.proxy);
	blobstore_close(s.store);
	for (int i = 0; i < 2; i++) {
		if (s.stop[i] >= 0)
			close(s.stop[i]);
		if (sig_pipe[i] >= 0)
			close(sig_pipe[i]);
		sig_pipe[i] = -1;
	}
	if (lock_fd >= 0) {
		if (rc == P_OK)
			unlink(pid_path);
		close(lock_fd);
	}
	pconfig_free(s.cfg);
	return rc;
}

static const char stop_usage[] = "usage: appliance-parent stop --config FILE [--timeout SECONDS]\n"
				 "\n"
				 "Sends SIGTERM to the parent running with FILE's state_dir and waits (default:\n"
				 "the enclave's shutdown grace + 10 s) until it has stopped the enclave and exited.\n";

int parent_cmd_stop(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},	  {NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	long timeout = -1;
	int ch;
	char err[PCONFIG_ERR_MAX + 64], pid_path[PCONFIG_STR_MAX + 32];
	struct pconfig *c = NULL;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't': {
			char *end = NULL;
			timeout = strtol(optarg, &end, 10);
			if (!end || *end || timeout <= 0 || timeout > 3600) {
				fputs(stop_usage, stderr);
				return P_USAGE;
			}
			break;
		}
		case 'h':
			fputs(stop_usage, stdout);
			return P_OK;
		default:
			fputs(stop_usage, stderr);
			return P_USAGE;
		}
	}
	if (!path || optind != argc) {
		fputs(stop_usage, stderr);
		return P_USAGE;
	}
	if (pconfig_load(&c, err, sizeof err, path, 0) != 0) {
		fprintf(stderr, "appliance-parent: %s\n", err);
		return P_USAGE;
	}
	if (timeout < 0)
		timeout = (long)c->shutdown_grace_ms / 1000 + 10;
	snprintf(pid_path, sizeof pid_path, "%s/run/parent.pid", c->state_dir);
	pconfig_free(c);
	int fd = open(pid_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "appliance-parent stop: no parent running (%s)\n", pid_path);
		return P_FAIL;
	}
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd);
		fprintf(stderr, "appliance-parent stop: no parent running (stale %s)\n", pid_path);
		return P_FAIL;
	}
	char b[32] = {0};
	ssize_t n = read(fd, b, sizeof b - 1);
	long lp = n > 0 ? strtol(b, NULL, 10) : 0;
	int pid = lp > 1 && lp < 0x7fffffff ? (int)lp : 0;
	if (pid <= 1 || kill(pid, SIGTERM) != 0) {
		close(fd);
		fprintf(stderr, "appliance-parent stop: cannot signal pid %d\n", pid);
		return P_FAIL;
	}
	int64_t deadline = now_ms() + timeout * 1000;
	while (now_ms() < deadline) {
		if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
			close(fd);
			printf("appliance-parent stopped pid=%d\n", pid);
			return P_OK;
		}
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	close(fd);
	fprintf(stderr, "appliance-parent stop: pid %d still running after %ld s\n", pid, timeout);
	return P_FAIL;
}

int parent_cmd_help_config(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	pconfig_print_help(stdout);
	return P_OK;
}
