/*
 * metrics_node.c - gathers the node's figures from the layers through their
 * own stats calls (FUSE operations from opstats.c, the device, the store in
 * single-machine mode, and in a cluster cl_metrics_get: membership, RPC,
 * tokens, DMAPI, relocations) and writes them with metrics.c.  Every name
 * is documented in docs/metrics.md; keep the two together.
 *
 * Lock order: none here; each layer's call takes its own locks briefly.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "xvm/xvm.h"
#include "cluster/cl.h"
#include "common/cx_hist.h"
#include "daemon/cxfsd.h"
#include "daemon/metrics.h"
#include "daemon/metrics_node.h"
#include "daemon/opstats.h"
#include "meta/meta_store.h"
#include "vnode/vn.h"

/* A family of one unlabelled sample. */
static void one(struct metrics_out *m, const char *name, const char *type, const char *help,
		uint64_t v)
{
	metrics_family(m, name, type, help);
	metrics_u64(m, name, NULL, 0, v);
}

static void fuse_ops(struct metrics_out *m)
{
	struct cxfsd_op_stats *ops = calloc(CXFSD_OPS_MAX, sizeof(*ops));
	size_t n = ops ? cxfsd_ops_get(ops, CXFSD_OPS_MAX) : 0;

	metrics_family(m, "cxfs_fuse_requests_total", "counter",
		       "FUSE requests read from the kernel, by operation.");
	for (size_t i = 0; i < n; i++)
		metrics_u64(m, "cxfs_fuse_requests_total", &(struct metrics_label){ "op", ops[i].name },
			    1, ops[i].requests);
	metrics_family(m, "cxfs_fuse_request_errors_total", "counter",
		       "FUSE requests answered with an error (ENOENT of a lookup included), by operation.");
	for (size_t i = 0; i < n; i++)
		metrics_u64(m, "cxfs_fuse_request_errors_total",
			    &(struct metrics_label){ "op", ops[i].name }, 1, ops[i].errors);
	metrics_family(m, "cxfs_fuse_request_duration_seconds", "histogram",
		       "Time from reading a FUSE request to writing its reply, by operation.");
	for (size_t i = 0; i < n; i++)
		if (ops[i].latency.count)
			metrics_hist(m, "cxfs_fuse_request_duration_seconds",
				     &(struct metrics_label){ "op", ops[i].name }, 1, &ops[i].latency);
	one(m, "cxfs_fuse_requests_in_flight", "gauge",
	    "FUSE requests read and not yet answered.", cxfsd_ops_in_flight());
	free(ops);
}

static void device(struct metrics_out *m, const struct xvm_vol *dev)
{
	struct blk_stats bs;

	xvm_get_stats(dev, &bs);
	one(m, "cxfs_device_reads_total", "counter", "Reads from the volume.", bs.reads);
	one(m, "cxfs_device_writes_total", "counter", "Writes to the volume.", bs.writes);
	one(m, "cxfs_device_flushes_total", "counter", "Cache flushes of the volume.", bs.flushes);
	one(m, "cxfs_device_read_bytes_total", "counter", "Bytes read from the volume.",
	    bs.bytes_read);
	one(m, "cxfs_device_written_bytes_total", "counter", "Bytes written to the volume.",
	    bs.bytes_written);
	one(m, "cxfs_device_errors_total", "counter",
	    "Reads, writes and flushes of the volume that failed.", bs.errors);
	one(m, "cxfs_device_reconnects_total", "counter",
	    "iSCSI sessions to the volume re-established.", bs.reconnects);
	one(m, "cxfs_device_reservation_conflicts_total", "counter",
	    "Commands the target refused with RESERVATION CONFLICT (this node fenced).",
	    bs.reservation_conflicts);
}

/* Single-machine mode: the store is here. */
static void store(struct metrics_out *m, struct meta_store *st)
{
	struct meta_store_stats ms;
	struct statvfs sv;

	meta_store_get_stats(st, &ms);
	one(m, "cxfs_store_operations_total", "counter", "Metadata store operations.", ms.ops);
	one(m, "cxfs_store_commits_total", "counter", "Metadata store transactions committed.",
	    ms.commits);
	metrics_family(m, "cxfs_store_commit_seconds_total", "counter",
		       "Time spent committing metadata store transactions.");
	metrics_f64(m, "cxfs_store_commit_seconds_total", NULL, 0, (double)ms.commit_usec / 1e6);
	if (meta_statfs(st, &sv) == 0) {
		one(m, "cxfs_space_size_bytes", "gauge", "Size of the data region.",
		    (uint64_t)sv.f_blocks * sv.f_bsize);
		one(m, "cxfs_space_free_bytes", "gauge", "Free bytes of the data region.",
		    (uint64_t)sv.f_bfree * sv.f_bsize);
	}
}

/* @s as a label value word: lower case, spaces as '_' ("bad MAC": "bad_mac"), into @b. */
static const char *word(const char *s, char *b, size_t size)
{
	size_t i = 0;

	for (; s[i] && i + 1 < size; i++)
		b[i] = s[i] == ' ' ? '_' : (char)tolower((unsigned char)s[i]);
	b[i] = '\0';
	return b;
}

/* A message type's name as a label value ("token_req"), into @b; NULL if unknown. */
static const char *type_name(int type, char *b, size_t size)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&cxfs__msg_type__descriptor, type);

	return v ? word(v->name, b, size) : NULL;
}

/* Counters by message type: @v[type], the types that have a name and a count. */
static void by_type(struct metrics_out *m, const char *name, const char *help, const uint64_t *v)
{
	char b[64];

	metrics_family(m, name, "counter", help);
	for (int i = 0; i < RPC_TYPES; i++) {
		struct metrics_label l = { "type", type_name(i, b, sizeof(b)) };

		if (v[i] && l.value)
			metrics_u64(m, name, &l, 1, v[i]);
	}
}

static void rpc(struct metrics_out *m, struct cl_ctx *cl, const struct rpc_stats *rs)
{
	struct cx_hist_snap h;
	char b[64];

	by_type(m, "cxfs_rpc_messages_sent_total", "Cluster messages sent, by type.",
		rs->sent_by_type);
	by_type(m, "cxfs_rpc_messages_received_total", "Cluster messages received, by type.",
		rs->received_by_type);
	one(m, "cxfs_rpc_sent_bytes_total", "counter", "Bytes of cluster messages sent.",
	    rs->bytes_sent);
	one(m, "cxfs_rpc_received_bytes_total", "counter", "Bytes of cluster messages received.",
	    rs->bytes_received);
	one(m, "cxfs_rpc_calls_total", "counter", "Cluster calls made (requests that wait for a reply).",
	    rs->calls);
	one(m, "cxfs_rpc_call_timeouts_total", "counter", "Cluster calls that timed out.",
	    rs->timeouts);
	metrics_family(m, "cxfs_rpc_call_duration_seconds", "histogram",
		       "Time from a cluster call to its reply (or error), by request type.");
	for (int i = 0; i < RPC_TYPES; i++) {
		struct metrics_label l = { "type", type_name(i, b, sizeof(b)) };

		cl_call_hist(cl, (Cxfs__MsgType)i, &h);
		if (h.count && l.value)
			metrics_hist(m, "cxfs_rpc_call_duration_seconds", &l, 1, &h);
	}
	one(m, "cxfs_rpc_connects_total", "counter", "Connections to other nodes established.",
	    rs->connects);
	one(m, "cxfs_rpc_disconnects_total", "counter", "Connections to other nodes lost or closed.",
	    rs->disconnects);
	metrics_family(m, "cxfs_rpc_dropped_frames_total", "counter",
		       "Frames refused (the connection is closed), by reason.");
	for (int i = 0; i < RPC_DROP__COUNT; i++)
		metrics_u64(m, "cxfs_rpc_dropped_frames_total",
			    &(struct metrics_label){ "reason", word(rpc_drop_name((enum rpc_drop)i), b,
								   sizeof(b)) },
			    1, rs->dropped[i]);
}

static void membership(struct metrics_out *m, const struct cl_metrics *cm)
{
	one(m, "cxfs_membership_epoch", "gauge",
	    "Epoch of the membership this node applied (grows with each change).", cm->epoch);
	one(m, "cxfs_membership_quorum", "gauge", "1 if this node's membership has quorum.",
	    cm->quorum);
	one(m, "cxfs_cut_off", "gauge",
	    "1 if this node is cut off (no quorum, or not a member): its requests wait.",
	    cm->cut_off);
	metrics_family(m, "cxfs_node_up", "gauge",
		       "1 if the node (peer) is in the membership, as this node sees it.");
	for (size_t i = 0; i < cm->nnodes; i++)
		metrics_u64(m, "cxfs_node_up", &(struct metrics_label){ "peer", cm->node[i].name },
			    1, cm->node[i].up);
	metrics_family(m, "cxfs_node_serves_metadata", "gauge",
		       "1 for the node (peer) this node knows as the metadata server.");
	for (size_t i = 0; i < cm->nnodes; i++)
		metrics_u64(m, "cxfs_node_serves_metadata",
			    &(struct metrics_label){ "peer", cm->node[i].name }, 1, cm->node[i].serves);
}

static void tokens(struct metrics_out *m, const struct cl_metrics *cm)
{
	metrics_family(m, "cxfs_token_acquires_total", "counter",
		       "Token acquisitions, by source: answered from the node's cache, or asked of the server.");
	metrics_u64(m, "cxfs_token_acquires_total", &(struct metrics_label){ "source", "cache" }, 1,
		    cm->tc.acquires_cached);
	metrics_u64(m, "cxfs_token_acquires_total", &(struct metrics_label){ "source", "server" },
		    1, cm->tc.acquires_server);
	metrics_family(m, "cxfs_token_wait_seconds", "histogram",
		       "Time of token acquisitions the cache could not answer at once.");
	metrics_hist(m, "cxfs_token_wait_seconds", NULL, 0, &cm->tok_wait);
	one(m, "cxfs_token_recalls_received_total", "counter",
	    "Token recalls this node answered with a return.", cm->tc.recalls);
	one(m, "cxfs_token_recall_refusals_total", "counter",
	    "Conditional token recalls this node refused (the file is in use).", cm->tc.refusals);
	one(m, "cxfs_token_cached_inodes", "gauge", "Inodes with tokens cached on this node.",
	    cm->tc.inodes);
	if (!cm->has_ts)
		return;
	one(m, "cxfs_token_grants_total", "counter", "Token requests the server granted.",
	    cm->ts.grants);
	one(m, "cxfs_token_recalls_sent_total", "counter", "Token recalls the server sent.",
	    cm->ts.recalls);
	one(m, "cxfs_token_returns_total", "counter", "Token returns the server took.",
	    cm->ts.returns);
	one(m, "cxfs_token_requests_waiting", "gauge",
	    "Token requests waiting at the server for holders to give tokens back.", cm->ts.waiting);
}

static void caches(struct metrics_out *m, const struct cl_metrics *cm)
{
	static const char *const n = "cxfs_meta_cache_lookups_total";
	const struct pc_row {
		const char *name, *type, *help;
		uint64_t v;
	} rows[] = {
		{ "cxfs_data_cache_dirty_bytes", "gauge",
		  "Written file data held in memory, not yet on the volume (write-behind).",
		  cm->pc.dirty_bytes },
		{ "cxfs_data_cache_clean_bytes", "gauge", "File data held in memory for re-reads.",
		  cm->pc.clean_bytes },
		{ "cxfs_data_cache_hits_total", "counter", "Blocks read from the data cache.",
		  cm->pc.hits },
		{ "cxfs_data_cache_misses_total", "counter", "Blocks not found in the data cache.",
		  cm->pc.misses },
		{ "cxfs_data_cache_flushed_bytes_total", "counter",
		  "Bytes of cached writes written back to the volume.", cm->pc.flushed_bytes },
		{ "cxfs_data_cache_waits_total", "counter",
		  "Writers that waited for room in the write-behind cache.", cm->pc.waits },
		{ "cxfs_data_cache_write_errors_total", "counter",
		  "Write-backs of cached data that failed (reported at fsync or close).",
		  cm->pc.errors },
	};

	metrics_family(m, n, "counter",
		       "Attribute and name look-ups of this node's metadata cache, by kind and result.");
	metrics_u64(m, n, (struct metrics_label[]){ { "kind", "attr" }, { "result", "hit" } }, 2,
		    cm->attr_hits);
	metrics_u64(m, n, (struct metrics_label[]){ { "kind", "attr" }, { "result", "miss" } }, 2,
		    cm->attr_misses);
	metrics_u64(m, n, (struct metrics_label[]){ { "kind", "name" }, { "result", "hit" } }, 2,
		    cm->name_hits);
	metrics_u64(m, n, (struct metrics_label[]){ { "kind", "name" }, { "result", "miss" } }, 2,
		    cm->name_misses);
	if (!cm->has_pc)
		return;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		one(m, rows[i].name, rows[i].type, rows[i].help, rows[i].v);
}

static void dmapi(struct metrics_out *m, const struct dm_stats *dm)
{
	one(m, "cxfs_dmapi_events_total", "counter", "DMAPI events posted to the HSM.", dm->posted);
	one(m, "cxfs_dmapi_events_delivered_total", "counter",
	    "DMAPI events the HSM took (dm_get_events).", dm->delivered);
	one(m, "cxfs_dmapi_events_answered_total", "counter", "DMAPI events the HSM answered.",
	    dm->responded);
	one(m, "cxfs_dmapi_event_timeouts_total", "counter",
	    "Operations that gave up waiting for the HSM's answer (--dmapi-timeout).", dm->timeouts);
	one(m, "cxfs_dmapi_events_pending", "gauge",
	    "Operations waiting for the HSM's answer to an event (the HSM's queue).", dm->waiting);
}

static void relocations(struct metrics_out *m, const struct cl_metrics *cm)
{
	one(m, "cxfs_relocations_total", "counter",
	    "Relocations of the metadata server this node completed as their source.",
	    cm->reloc.done);
	one(m, "cxfs_relocation_aborts_total", "counter",
	    "Relocations this node aborted as their source (it kept serving).", cm->reloc.aborted);
	metrics_family(m, "cxfs_relocation_pause_seconds", "histogram",
		       "Time from a relocation's request until every node was retargeted.");
	metrics_hist(m, "cxfs_relocation_pause_seconds", NULL, 0, &cm->reloc.pause);
	one(m, "cxfs_recoveries_total", "counter",
	    "Recoveries after a node's death this node took part in.", cm->recoveries);
}

static void cluster(struct metrics_out *m, struct cl_ctx *cl)
{
	struct cl_metrics *cm = malloc(sizeof(*cm));

	if (!cm)
		return;
	cl_metrics_get(cl, cm);
	one(m, "cxfs_is_mds", "gauge", "1 if this node serves the filesystem's metadata.",
	    cm->is_server);
	membership(m, cm);
	rpc(m, cl, &cm->rpc);
	tokens(m, cm);
	caches(m, cm);
	if (cm->has_dm)
		dmapi(m, &cm->dm);
	relocations(m, cm);
	free(cm);
}

char *cxfsd_metrics_render(const struct cxfsd *d, size_t *len)
{
	char host[256] = "";
	struct metrics_label common[2] = { { "fs", "" }, { "node", host } };
	struct metrics_out *m;

	if (d->cl) {
		common[0].value = cl_fs_name(d->cl);
		common[1].value = cl_node_name(d->cl);
	} else {
		common[0].value = meta_store_sb(d->st)->name;
		gethostname(host, sizeof(host) - 1);
	}
	m = metrics_new(common, 2);
	if (!m)
		return NULL;
	metrics_family(m, "cxfs_info", "gauge", "Always 1; the labels say the mode and the volume.");
	metrics_u64(m, "cxfs_info", (struct metrics_label[]){ { "mode", d->cl ? "cluster" : "single" },
							     { "volume", xvm_uri(d->dev) } },
		    2, 1);
	fuse_ops(m);
	one(m, "cxfs_vnodes", "gauge", "Vnodes cached (files the kernel knows).",
	    vn_table_count(d->vt));
	device(m, d->dev);
	if (d->cl) {
		cluster(m, d->cl);
	} else {
		one(m, "cxfs_is_mds", "gauge", "1 if this node serves the filesystem's metadata.", 1);
		store(m, d->st);
	}
	return metrics_take(m, len);
}
