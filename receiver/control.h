/* SPDX-License-Identifier: GPL-2.0-only */
/* The receiver's local control socket (STATE_DIR/control.sock, 0600): one request line
 * per connection, answered with lines ending in "OK" or "FAILED: reason". A first,
 * minimal operator interface; ternctl is its client. */
#pragma once
#include "receiver/session.h"

#define CONTROL_SOCKET "control.sock"

struct control;

/* Creates the socket in the state dir and serves it on a thread. 0 or -errno. */
int control_start(struct rcv_server *srv, struct control **ret_ctl);
/* Stops serving and removes the socket; NULL-safe, returns NULL. */
struct control *control_stop(struct control *ctl);
