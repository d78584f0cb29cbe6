/*
 * launch.c: starting the enclave (launch.h).
 */
#include "parent/launch.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <openssl/evp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "appliance/hash.h"

static void extend_zero(uint8_t out[48], const uint8_t digest[48])
{
	uint8_t buf[96];
	memset(buf, 0, 48);
	memcpy(buf + 48, digest, 48);
	hash_sha384(out, buf, sizeof buf);
}

void launch_measure(uint8_t pcr[3][48], const uint8_t *bin, size_t bin_len, const uint8_t *cfg, size_t cfg_len)
{
	uint8_t d[48];
	unsigned dl = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha384(), NULL) != 1 || (cfg_len && EVP_DigestUpdate(ctx, cfg, cfg_len) != 1) ||
	    (bin_len && EVP_DigestUpdate(ctx, bin, bin_len) != 1) || EVP_DigestFinal_ex(ctx, d, &dl) != 1 || dl != 48)
		abort(); /* OpenSSL broken: an invariant, not input */
	EVP_MD_CTX_free(ctx);
	extend_zero(pcr[0], d);
	hash_sha384(d, cfg_len ? cfg : (const uint8_t *)"", cfg_len);
	extend_zero(pcr[1], d);
	hash_sha384(d, bin_len ? bin : (const uint8_t *)"", bin_len);
	extend_zero(pcr[2], d);
}

/* copy_sealed: the file at path into a sealed memfd; maps it read-only into *map. */
static int copy_sealed(int *fd_out, uint64_t *len_out, const uint8_t **map, const char *path, uint64_t max,
		       const char *name)
{
	int in = -1, fd = -1, r = APP_EIO;
	struct stat st;
	uint8_t *buf = NULL;
	*fd_out = -1;
	*map = NULL;
	in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return errno == ENOENT ? APP_ENOENT : APP_EIO;
	if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode))
		goto out;
	if ((uint64_t)st.st_size > max) {
		r = APP_ETOOBIG;
		goto out;
	}
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		goto out;
	if (!(buf = malloc(1 << 20))) {
		r = APP_ENOMEM;
		goto out;
	}
	uint64_t total = 0;
	for (;;) {
		ssize_t k = read(in, buf, 1 << 20);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			goto out;
		if (k == 0)
			break;
		total += (uint64_t)k;
		if (total > max) {
			r = APP_ETOOBIG;
			goto out;
		}
		for (ssize_t off = 0; off < k;) {
			ssize_t w = write(fd, buf + off, (size_t)(k - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				goto out;
			off += w;
		}
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
		goto out;
	if (total) {
		void *m = mmap(NULL, (size_t)total, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED)
			goto out;
		*map = m;
	}
	*fd_out = fd;
	*len_out = total;
	fd = -1;
	r = 0;
out:
	free(buf);
	if (in >= 0)
		close(in);
	if (fd >= 0)
		close(fd);
	return r;
}

int launch_image_load(struct launch_image *img, const char *binary, const char *config)
{
	const uint8_t *bm = NULL, *cm = NULL;
	int r;
	memset(img, 0, sizeof *img);
	img->bin_fd = img->cfg_fd = -1;
	if ((r = copy_sealed(&img->bin_fd, &img->bin_len, &bm, binary, LAUNCH_IMAGE_MAX, "appliance-enclave")) != 0)
		goto fail;
	if (config && *config &&
	    (r = copy_sealed(&img->cfg_fd, &img->cfg_len, &cm, config, LAUNCH_CONFIG_MAX, "enclave-config")) != 0)
		goto fail;
	launch_measure(img->pcr, bm, (size_t)img->bin_len, cm, (size_t)img->cfg_len);
	if (bm)
		munmap((void *)bm, (size_t)img->bin_len);
	if (cm)
		munmap((void *)cm, (size_t)img->cfg_len);
	return 0;
fail:
	if (bm)
		munmap((void *)bm, (size_t)img->bin_len);
	launch_image_clear(img);
	return r;
}

void launch_image_clear(struct launch_image *img)
{
	if (img->bin_fd > 0)
		close(img->bin_fd);
	if (img->cfg_fd > 0)
		close(img->cfg_fd);
	img->bin_fd = img->cfg_fd = -1;
}

/* What the child needs, prepared before clone (no allocation after it). */
struct child {
	char *argv[LAUNCH_ARGS_MAX + 4];
	char *envp[LAUNCH_ENV_MAX + 1];
	char cfgpath[64];
	int bin_fd, cfg_fd;
	int mount_ns;
	int errpipe; /* write end: errno of a failed exec */
};

static void child_fail(struct child *c, int stage)
{
	int e[2] = {stage, errno};
	if (write(c->errpipe, e, sizeof e) < 0) {
		/* nothing else to tell */
	}
	_exit(127);
}

static int child_main(void *arg)
{
	struct child *c = arg;
	/* the enclave dies with the parent's supervisor only by choice (no PDEATHSIG): a parent
	 * restart adopts it, as on Nitro where the enclave outlives its parent's processes */
	if (c->mount_ns) {
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
			child_fail(c, 1);
		if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
			child_fail(c, 2);
	}
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0 || dup2(devnull, 0) < 0)
		child_fail(c, 3);
	if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) != 0)
		child_fail(c, 4);
	if (c->cfg_fd >= 0 && fcntl(c->cfg_fd, F_SETFD, 0) != 0)
		child_fail(c, 5);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	syscall(SYS_execveat, c->bin_fd, "", c->argv, c->envp, AT_EMPTY_PATH);
	child_fail(c, 6);
	return 127;
}

int launch_dev(pid_t *pid, int *ns, const char **why, const struct launch_spec *spec)
{
	struct child c;
	size_t n = 0;
	int ep[2] = {-1, -1}, r = APP_EIO;
	char *stack = NULL;
	const size_t stack_len = 256 * 1024;
	*pid = -1;
	*ns = 0;
	*why = "";
	if (!spec || !spec->img || spec->nargs > LAUNCH_ARGS_MAX || spec->nenv > LAUNCH_ENV_MAX)
		return APP_EINVAL;
	memset(&c, 0, sizeof c);
	c.argv[n++] = (char *)(spec->argv0 ? spec->argv0 : "appliance-enclave");
	for (size_t i = 0; i < spec->nargs; i++)
		c.argv[n++] = spec->args[i];
	if (spec->img->cfg_fd >= 0) {
		snprintf(c.cfgpath, sizeof c.cfgpath, "/proc/self/fd/%d", spec->img->cfg_fd);
		c.argv[n++] = (char *)"--config";
		c.argv[n++] = c.cfgpath;
	}
	c.argv[n] = NULL;
	for (size_t i = 0; i < spec->nenv; i++)
		c.envp[i] = spec->env[i];
	c.envp[spec->nenv] = NULL;
	c.bin_fd = spec->img->bin_fd;
	c.cfg_fd = spec->img->cfg_fd;
	if (pipe2(ep, O_CLOEXEC) != 0)
		return APP_EIO;
	c.errpipe = ep[1];
	if (!(stack = malloc(stack_len))) {
		r = APP_ENOMEM;
		goto out;
	}
	int flags = CLONE_NEWNET | SIGCHLD;
	pid_t p = -1;
	if (spec->full) {
		c.mount_ns = 1;
		p = clone(child_main, stack + stack_len, flags | CLONE_NEWNS | CLONE_NEWPID, &c);
		if (p < 0)
			*why = errno == EPERM ? "mount/PID namespaces not permitted (EPERM)"
			       : errno == EINVAL ? "mount/PID namespaces not supported (EINVAL)"
						 : "mount/PID namespaces refused";
		else
			*ns = LAUNCH_NS_NET | LAUNCH_NS_MOUNT | LAUNCH_NS_PID;
	}
	if (p < 0) {
		c.mount_ns = 0;
		p = clone(child_main, stack + stack_len, flags, &c);
		if (p < 0) {
			r = APP_EREFUSED;
			goto out;
		}
		*ns = LAUNCH_NS_NET;
	}
	close(ep[1]);
	ep[1] = -1;
	/* the exec closes the pipe (CLOEXEC): EOF = started; data = the failure */
	int e[2] = {0, 0};
	ssize_t k;
	do
		k = read(ep[0], e, sizeof e);
	while (k < 0 && errno == EINTR);
	if (k == (ssize_t)sizeof e) {
		int st;
		waitpid(p, &st, 0);
		if (e[0] == 1 || e[0] == 2) {
			/* the mount namespace did not work out: retry without it */
			*why = "mounting in the new mount namespace failed";
			struct launch_spec s2 = *spec;
			s2.full = 0;
			free(stack);
			close(ep[0]);
			return launch_dev(pid, ns, why, &s2) == 0 ? 0 : APP_EIO;
		}
		errno = e[1];
		r = APP_EIO;
		goto out;
	}
	*pid = p;
	r = 0;
out:
	free(stack);
	if (ep[0] >= 0)
		close(ep[0]);
	if (ep[1] >= 0)
		close(ep[1]);
	return r;
}

int launch_nitro_run_argv(const char **argv, size_t cap, char bufs[3][24], const char *eif, uint32_t cpu_count,
			  uint32_t memory_mib, uint32_t cid, int debug_mode)
{
	size_t n = 0;
	if (!eif || !*eif || cpu_count == 0 || memory_mib == 0 || cid < 4 || cid == 0xFFFFFFFFu || cap < 13)
		return APP_EINVAL;
	snprintf(bufs[0], 24, "%u", cpu_count);
	snprintf(bufs[1], 24, "%u", memory_mib);
	snprintf(bufs[2], 24, "%u", cid);
	argv[n++] = "nitro-cli";
	argv[n++] = "run-enclave";
	argv[n++] = "--eif-path";
	argv[n++] = eif;
	argv[n++] = "--cpu-count";
	argv[n++] = bufs[0];
	argv[n++] = "--memory";
	argv[n++] = bufs[1];
	argv[n++] = "--enclave-cid";
	argv[n++] = bufs[2];
	if (debug_mode)
		argv[n++] = "--debug-mode";
	argv[n] = NULL;
	return (int)n;
}

int launch_nitro_terminate_argv(const char **argv, size_t cap, const char *enclave_id)
{
	size_t l = enclave_id ? strlen(enclave_id) : 0;
	if (l == 0 || l > 64 || cap < 5)
		return APP_EINVAL;
	for (size_t i = 0; i < l; i++) {
		char ch = enclave_id[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-'))
			return APP_EINVAL;
	}
	argv[0] = "nitro-cli";
	argv[1] = "terminate-enclave";
	argv[2] = "--enclave-id";
	argv[3] = enclave_id;
	argv[4] = NULL;
	return 4;
}

int launch_nitro_enclave_id(char *out, size_t cap, const char *json, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(json, len);
	int r = APP_EPARSE;
	if (!j)
		return APP_EPARSE;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "EnclaveID");
	if (cJSON_IsString(id) && id->valuestring[0]) {
		size_t l = strlen(id->valuestring);
		if (l >= cap) {
			r = APP_ETOOBIG;
		} else {
			memcpy(out, id->valuestring, l + 1);
			r = 0;
		}
	}
	cJSON_Delete(j);
	return r;
}
