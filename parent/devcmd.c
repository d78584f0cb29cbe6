#include "devcmd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/log.h"
#include "devca.h"
#include "nsm_emu.h"

enum { P_OK = 0, P_REFUSED = 1, P_USAGE = 2 };

static int perr(int code, const char *cmd, const char *what, int err)
{
	fprintf(stderr, "appliance-parent %s: %s: %s\n", cmd, what, app_strerror(err));
	return code;
}

static const char dev_ca_usage[] =
	"usage: appliance-parent dev-ca create DIR\n"
	"\n"
	"Creates a development root CA (P-384) in DIR: DIR/root.key (mode 0600) and\n"
	"DIR/root.pem. An existing root is never overwritten. The NSM emulator signs\n"
	"attestation documents with a chain under this root; verifiers accept it only\n"
	"with --allow-dev (appliance attest verify --root DIR/root.pem --allow-dev).\n"
	"Prints the SHA-256 of the root certificate's DER.\n";

int parent_cmd_dev_ca(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(dev_ca_usage, stdout);
		return P_OK;
	}
	if (argc != 3 || strcmp(argv[1], "create") != 0) {
		fputs(dev_ca_usage, stderr);
		return P_USAGE;
	}
	const char *dir = argv[2];
	int r = devca_create(dir, 0);
	if (r != 0)
		return perr(r == APP_EEXIST ? P_REFUSED : P_USAGE, "dev-ca", dir, r);
	struct devca *ca = NULL;
	uint8_t *der = NULL, h[32];
	size_t len = 0;
	char hx[65];
	if ((r = devca_load(&ca, dir)) != 0 || (r = devca_root_der(ca, &der, &len)) != 0) {
		devca_free(ca);
		return perr(P_REFUSED, "dev-ca", dir, r);
	}
	hash_sha256(h, der, len);
	hex_encode(hx, h, sizeof h);
	printf("dev-ca created dir=%s root=%s/%s sha256=%s\n", dir, dir, DEVCA_ROOT_CERT_FILE, hx);
	free(der);
	devca_free(ca);
	return P_OK;
}

/*
 * Stop signals reach the serve loop through a self-pipe: the handler runs in
 * whichever thread the kernel picks (libraries such as OpenBLAS start threads
 * of their own, so blocking signals in the main thread is not enough).
 */
static int stop_pipe[2] = {-1, -1};

static void on_stop_signal(int sig)
{
	(void)sig;
	int saved = errno;
	if (write(stop_pipe[1], "x", 1) < 0) {
		/* the pipe is full: a stop is already pending */
	}
	errno = saved;
}

static int install_stop_handler(void)
{
	if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		return APP_EIO;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
		return APP_EIO;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static const char emu_usage[] =
	"usage: appliance-parent nsm-emulator --socket PATH --ca DIR (--image FILE | --pcr 0=HEX --pcr 1=HEX --pcr 2=HEX)\n"
	"                                     [--pcr N=HEX]... [--instance-id i-HEX] [--indefinite]\n"
	"\n"
	"Serves the development NSM emulator (the real NSM CBOR protocol, framed as a\n"
	"4-byte big-endian length + CBOR) on the unix socket PATH until SIGINT/SIGTERM.\n"
	"  --socket PATH       where to listen (mode 0600; a stale socket is replaced)\n"
	"  --ca DIR            the dev CA made by `appliance-parent dev-ca create DIR`\n"
	"  --image FILE        the enclave binary, measured into PCR0/1/2:\n"
	"                      PCR0 = PCR2 = SHA384(0^48 || SHA384(FILE)), PCR1 = SHA384(0^48 || SHA384(\"\"))\n"
	"  --pcr N=HEX         initial value of PCR3, PCR4 or PCR8 (96 hex digits);\n"
	"                      PCR4 defaults to SHA384(0^48 || instance id), the others to zero;\n"
	"                      or PCR0, PCR1 and PCR2 all three instead of --image (the values a\n"
	"                      launcher measured: appliance-parent run --dev)\n"
	"  --instance-id ID    the emulated EC2 instance (\"i-\" + hex; default random)\n"
	"  --indefinite        encode payload maps indefinite-length (as AWS in 2026)\n"
	"Prints \"nsm-emulator ready socket=PATH module_id=ID pcr0=HEX\" once listening.\n";

int parent_cmd_nsm_emulator(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},   {"ca", required_argument, NULL, 'c'},
		{"image", required_argument, NULL, 'i'},    {"pcr", required_argument, NULL, 'p'},
		{"instance-id", required_argument, NULL, 'I'}, {"indefinite", no_argument, NULL, 'D'},
		{"help", no_argument, NULL, 'h'},	    {NULL, 0, NULL, 0},
	};
	const char *sock = NULL, *cadir = NULL, *image = NULL;
	struct nsm_emu_config cfg;
	struct devca *ca = NULL;
	struct nsm_emu *emu = NULL;
	int lfd = -1, rc = P_USAGE, r, c;
	memset(&cfg, 0, sizeof cfg);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'c':
			cadir = optarg;
			break;
		case 'i':
			image = optarg;
			break;
		case 'p': {
			char *eq = strchr(optarg, '=');
			char *end = NULL;
			long n = eq ? strtol(optarg, &end, 10) : -1;
			if (!eq || end != eq || (n != 0 && n != 1 && n != 2 && n != 3 && n != 4 && n != 8)) {
				fprintf(stderr, "appliance-parent nsm-emulator: --pcr takes N=HEX for N in 0, 1, 2, 3, 4, 8\n");
				goto out;
			}
			if ((cfg.pcr_set >> n) & 1u) {
				fprintf(stderr, "appliance-parent nsm-emulator: PCR%ld given twice\n", n);
				goto out;
			}
			if (hex_decode(cfg.pcr[n], NSM_PCR_LEN, eq + 1, strlen(eq + 1), 0) != 0) {
				fprintf(stderr, "appliance-parent nsm-emulator: PCR%ld: expected 96 hex digits\n", n);
				goto out;
			}
			cfg.pcr_set |= 1u << n;
			break;
		}
		case 'I':
			if (strlen(optarg) >= sizeof cfg.instance_id) {
				fprintf(stderr, "appliance-parent nsm-emulator: --instance-id too long\n");
				goto out;
			}
			snprintf(cfg.instance_id, sizeof cfg.instance_id, "%s", optarg);
			break;
		case 'D':
			cfg.indefinite_map = 1;
			break;
		case 'h':
			fputs(emu_usage, stdout);
			rc = P_OK;
			goto out;
		default:
			fputs(emu_usage, stderr);
			goto out;
		}
	}
	/* PCR0/1/2 come from --image, or all three from --pcr (a launcher that measured itself) */
	if (!sock || !cadir || optind != argc || (image && (cfg.pcr_set & 7u)) || (!image && (cfg.pcr_set & 7u) != 7u)) {
		fputs(emu_usage, stderr);
		goto out;
	}
	if (image && (r = nsm_emu_measure_file(&cfg, image)) != 0) {
		rc = perr(P_USAGE, "nsm-emulator", image, r);
		goto out;
	}
	if ((r = devca_load(&ca, cadir)) != 0) {
		rc = perr(P_USAGE, "nsm-emulator", cadir, r);
		goto out;
	}
	if ((r = nsm_emu_new(&emu, ca, &cfg)) != 0) {
		rc = perr(P_USAGE, "nsm-emulator", "configuration", r);
		goto out;
	}
	if (install_stop_handler() != 0) {
		rc = perr(P_REFUSED, "nsm-emulator", "signal handler", APP_EIO);
		goto out;
	}
	if ((r = nsm_emu_listen(sock, &lfd)) != 0) {
		rc = perr(P_USAGE, "nsm-emulator", sock, r);
		goto out;
	}
	char p0[2 * NSM_PCR_LEN + 1];
	hex_encode(p0, cfg.pcr[0], NSM_PCR_LEN);
	printf("nsm-emulator ready socket=%s module_id=%s pcr0=%s\n", sock, nsm_emu_module_id(emu), p0);
	fflush(stdout);
	log_info("event=nsm_emulator_start socket=%s module_id=%s", sock, nsm_emu_module_id(emu));
	r = nsm_emu_serve(emu, lfd, stop_pipe[0]);
	log_info("event=nsm_emulator_stop result=%s", app_errname(r));
	rc = r == 0 ? P_OK : P_REFUSED;
	unlink(sock);
out:
	if (lfd >= 0)
		close(lfd);
	nsm_emu_free(emu);
	devca_free(ca);
	return rc;
}
