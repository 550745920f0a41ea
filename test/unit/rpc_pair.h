/*
 * rpc_pair.h - for unit tests (header only, static functions): a server
 * rpc context listening on 127.0.0.1 and a client context connected to it,
 * both of the test cluster (its name, secret, epoch 1 are set here; the
 * rest of each configuration, handlers and workers, is the caller's).
 */
#ifndef CXFS_TEST_RPC_PAIR_H
#define CXFS_TEST_RPC_PAIR_H

#include "rpc/rpc.h"

#define RPC_PAIR_CLUSTER "testcluster"

static const uint8_t rpc_pair_secret[32] = "0123456789abcdef0123456789abcdef";

/* 0 with *@srv, *@cli and *@ch (the client's channel to the server), or -1. */
static int rpc_pair_open(struct rpc_config sc, struct rpc_config cc, struct rpc_ctx **srv,
			 struct rpc_ctx **cli, struct rpc_chan **ch)
{
	sc.cluster = cc.cluster = RPC_PAIR_CLUSTER;
	sc.node = "server";
	cc.node = "client";
	sc.secret = cc.secret = rpc_pair_secret;
	sc.secret_len = cc.secret_len = sizeof(rpc_pair_secret);
	sc.epoch = cc.epoch = 1;
	sc.listen_addr = "127.0.0.1";
	if (rpc_ctx_create(&sc, srv) || rpc_ctx_create(&cc, cli))
		return -1;
	return rpc_connect(*cli, "127.0.0.1", rpc_ctx_port(*srv), ch) ? -1 : 0;
}

static void rpc_pair_close(struct rpc_ctx *srv, struct rpc_ctx *cli, struct rpc_chan *ch)
{
	rpc_chan_put(ch);
	rpc_ctx_destroy(cli);
	rpc_ctx_destroy(srv);
}

#endif
