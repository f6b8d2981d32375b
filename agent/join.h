/* SPDX-License-Identifier: GPL-2.0-only */
/* `tern-agent join TOKEN`: enrols this host with a receiver. The key is generated here and
 * never leaves the host; the receiver signs it once the token's secret checks out, over a
 * TLS connection verified against the CA hash the token pins. */
#pragma once

/* argv[0] is "join". Prints its own errors; returns the process exit code (0, 1 when the
 * enrolment failed or was refused, 2 for a usage error). */
int join_main(int argc, char **argv);
