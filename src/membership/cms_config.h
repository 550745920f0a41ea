/*
 * cms_config.h - the cluster configuration: the one file every node of a
 * cluster shares (default /etc/cxfs/cluster.conf, format in
 * docs/cluster.conf.md), parsed and checked as a whole, and the static part
 * of the name service (which node of a filesystem's server order serves it,
 * given the nodes that are up).
 *
 * A configuration is either accepted completely or refused: on failure the
 * parsers return a negative errno, write one line naming the file and the
 * line ("cluster.conf:12: node \"beta\" listed twice") into the caller's
 * message buffer and hand back nothing.  An accepted configuration is
 * immutable, so any number of threads may read it at once; its strings and
 * objects live until cms_config_free().
 *
 * Node and filesystem lookups return pointers into the configuration.
 * Nodes are numbered 0..cms_config_node_count()-1 in file order; that number
 * (cms_node_index()) indexes the "up" array of cms_fs_server_for().
 */
#ifndef CXFS_CMS_CONFIG_H
#define CXFS_CMS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CMS_CONFIG_DEFAULT_PATH "/etc/cxfs/cluster.conf"
#define CMS_DEFAULT_PORT 7400            /* a node's port when its section gives none */
#define CMS_SECRET_MIN 32                /* shortest accepted secret, in bytes */
#define CMS_SECRET_MAX 4096              /* longest accepted secret, in bytes */
#define CMS_NAME_MAX 63                  /* longest cluster, node or filesystem name */
#define CMS_INITIATOR_PREFIX "iqn.2026-11.org.cxfs:"  /* of derived initiator names */

#define CMS_HEARTBEAT_MS 200             /* default heartbeat interval */
#define CMS_DEAD_MS 900                  /* default: a node not heard for this long is dead */
#define CMS_QUORUM_WAIT_MS 60000         /* default: how long requests wait for quorum */
#define CMS_WRITE_BEHIND_MB 64           /* default: a client's dirty data cache, MiB */
#define CMS_READ_CACHE_MB 256            /* default: a client's clean data cache, MiB */
#define CMS_CACHE_MB_MAX 65536           /* largest data cache bound, MiB */

/* What decides when exactly half of the nodes that may serve are together. */
enum cms_tie_breaker {
	CMS_TIE_DISK,                    /* a race for the reservation of the shared LUN (default) */
	CMS_TIE_NONE,                    /* half is not a quorum */
};

struct cms_config;
struct cms_node;
struct cms_fs;

/* What a node's address is. */
enum cms_addr_kind {
	CMS_ADDR_IPV4,                   /* a dotted-quad literal */
	CMS_ADDR_IPV6,                   /* an IPv6 literal (stored without brackets) */
	CMS_ADDR_HOST,                   /* a host name, resolved when connecting */
};

/*
 * Read and check the configuration file @path, and read the secret file it
 * names (a relative secret path is taken relative to the directory of
 * @path).  On success *@out holds the configuration, which the caller must
 * free with cms_config_free().  On failure *@out is untouched, @err holds the
 * reason and the result is the errno of open() or read() (-ENOENT, -EACCES,
 * -EISDIR, ...) when the file or the secret file cannot be read, -EFBIG for
 * a file over 1 MiB, -EPERM for a secret file that group or others may
 * access or that belongs to another user, -EINVAL for anything wrong inside
 * the files, -ENOMEM.
 */
int cms_config_load(const char *path, struct cms_config **out, char *err, size_t errlen);

/*
 * The same for the @len bytes at @buf, which need not be NUL-terminated;
 * @name stands for the file in messages and locates a relative secret path.
 */
int cms_config_parse(const char *name, const char *buf, size_t len, struct cms_config **out,
		     char *err, size_t errlen);

/* Free @cfg (NULL is fine); the secret's bytes are wiped first. */
void cms_config_free(struct cms_config *cfg);

const char *cms_config_path(const struct cms_config *cfg);         /* the @path / @name parsed */
const char *cms_config_cluster(const struct cms_config *cfg);      /* the cluster's name */
const char *cms_config_secret_path(const struct cms_config *cfg);  /* as resolved */
/* The secret's bytes (all of the file, at least CMS_SECRET_MIN); *@len gets their number. */
const uint8_t *cms_config_secret(const struct cms_config *cfg, size_t *len);

/* The membership settings (docs/cluster.conf.md), defaults applied. */
unsigned cms_config_heartbeat_ms(const struct cms_config *cfg);
unsigned cms_config_dead_ms(const struct cms_config *cfg);
unsigned cms_config_quorum_wait_ms(const struct cms_config *cfg);
enum cms_tie_breaker cms_config_tie_breaker(const struct cms_config *cfg);
/* A client node's data cache bounds in MiB (docs/cluster.conf.md; 0: off). */
unsigned cms_config_write_behind_mb(const struct cms_config *cfg);
unsigned cms_config_read_cache_mb(const struct cms_config *cfg);
/*
 * Where @node serves its Prometheus metrics (docs/metrics.md): its own
 * "metrics" ADDR:PORT, else the global one; NULL if neither or "off".
 */
struct cms_node;
const char *cms_config_metrics(const struct cms_config *cfg, const struct cms_node *node);

/* Nodes, in file order. */
size_t cms_config_node_count(const struct cms_config *cfg);
const struct cms_node *cms_config_node_at(const struct cms_config *cfg, size_t i);
/* The node named @name, or NULL. */
const struct cms_node *cms_config_node(const struct cms_config *cfg, const char *name);

/*
 * Which node this daemon is (its --node NAME): *@out gets the node named
 * @name.  -ENOENT with a message naming the file and the nodes it does list
 * when there is none.
 */
int cms_config_self(const struct cms_config *cfg, const char *name, const struct cms_node **out,
		    char *err, size_t errlen);

const char *cms_node_name(const struct cms_node *node);
const char *cms_node_address(const struct cms_node *node);  /* host name or literal, no brackets */
enum cms_addr_kind cms_node_addr_kind(const struct cms_node *node);
uint16_t cms_node_port(const struct cms_node *node);
bool cms_node_may_serve(const struct cms_node *node);       /* may be a metadata server */
const char *cms_node_initiator(const struct cms_node *node);  /* its iSCSI initiator IQN */
size_t cms_node_index(const struct cms_node *node);          /* position in the file, from 0 */
int cms_node_line(const struct cms_node *node);              /* line of its "node" keyword */

/* Filesystems, in file order. */
size_t cms_config_fs_count(const struct cms_config *cfg);
const struct cms_fs *cms_config_fs_at(const struct cms_config *cfg, size_t i);
/* The filesystem named @name, or NULL. */
const struct cms_fs *cms_config_fs(const struct cms_config *cfg, const char *name);

const char *cms_fs_name(const struct cms_fs *fs);
/*
 * Its volume lines (file paths or iscsi:// URIs), at least one: together the
 * LUNs of its volume, as xvm_open() takes them.
 */
size_t cms_fs_volume_count(const struct cms_fs *fs);
const char *cms_fs_volume(const struct cms_fs *fs, size_t i);
/* Its server order, most preferred first: at least one node, each of which may serve. */
size_t cms_fs_server_count(const struct cms_fs *fs);
const struct cms_node *cms_fs_server(const struct cms_fs *fs, size_t i);
bool cms_fs_dmapi(const struct cms_fs *fs);                  /* DMAPI events on */
const char *cms_fs_options(const struct cms_fs *fs);         /* mount options, or NULL */
int cms_fs_line(const struct cms_fs *fs);                    /* line of its "filesystem" keyword */

/*
 * The name service's choice: the first node of @fs's server order that is
 * up, where @up[cms_node_index(n)] says whether node n is up (indexes at or
 * past @nup count as down).  NULL when no server of @fs is up.
 */
const struct cms_node *cms_fs_server_for(const struct cms_fs *fs, const bool *up, size_t nup);

#endif
