/*
 * devcmd.h: the dev-mode subcommands of appliance-parent (parent/main.c
 * dispatches to them):
 *
 *   appliance-parent dev-ca create DIR
 *   appliance-parent nsm-emulator --socket PATH --ca DIR (--image FILE | --pcr 0=HEX --pcr 1=HEX --pcr 2=HEX)
 *                                 [--pcr N=HEX]... [--instance-id i-HEX] [--indefinite]
 *
 * Each is `int fn(int argc, char **argv)` with argv[0] the subcommand name,
 * answers --help on stdout, and returns 0 ok, 1 refused/failed, 2 usage.
 */
#ifndef PARENT_DEVCMD_H
#define PARENT_DEVCMD_H

/* parent_cmd_dev_ca: `dev-ca create DIR`: a new development root (parent/devca.h). */
int parent_cmd_dev_ca(int argc, char **argv);

/*
 * parent_cmd_nsm_emulator: serves the NSM emulator (parent/nsm_emu.h) on a
 * unix socket until SIGINT/SIGTERM. PCR0/1/2 are measured from --image, or
 * given all three with --pcr 0=, 1=, 2= (appliance-parent run --dev measures
 * the image itself and runs the emulator as its own process);
 * --pcr sets PCR3, PCR4 or PCR8 (48 bytes as 96 hex digits). Prints one
 * line "nsm-emulator ready socket=PATH module_id=ID pcr0=HEX" on stdout when
 * listening.
 */
int parent_cmd_nsm_emulator(int argc, char **argv);

#endif
