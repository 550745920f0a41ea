/*
 * cms_config.c - the cluster configuration: parsing and checking the file
 * every node shares (docs/cluster.conf.md), reading the cluster secret, and
 * the name service's static choice of a filesystem's server.
 *
 * Divisions of this file:
 *   1. The objects and their accessors.
 *   2. The keyword table and the parser's state.
 *   3. Messages and lexical checks: names, booleans, ports, addresses,
 *      iSCSI names, volume URIs, mount options.
 *   4. One handler per keyword, and the line splitter that runs them.
 *   5. Whole-file checks, run once every line is read: missing settings,
 *      clashing ports and initiator names, server orders, the secret file.
 *   6. The entry points: parse a buffer, load a file, self.
 *
 * The parser reads the text one line at a time into a configuration under
 * construction, which owns everything allocated so far; any failure frees
 * all of it, so a caller never sees a half-parsed configuration.  Server
 * orders name nodes that may appear later in the file, so they are kept as
 * names until the whole-file checks resolve them.
 */
#include "membership/cms_config.h"
#include "common/cx_util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMS__LINE_MAX 4096        /* longest line, in bytes */
#define CMS__WORDS_MAX 256        /* most words on one line */
#define CMS__HOST_MAX 253         /* longest host name (RFC 1123) */
#define CMS__IQN_MAX 223          /* longest iSCSI name (RFC 3720) */
#define CMS__LUN_MAX 16383        /* highest LUN the block layer addresses */
#define CMS__FILE_MAX (1u << 20)  /* largest configuration file read */

/* 1. The objects and their accessors. */

struct cms_node {
	char *name;                      /* unique within the cluster */
	char *address;                   /* host name or literal, without brackets */
	enum cms_addr_kind kind;         /* what @address is */
	unsigned char bin[16];           /* a literal's binary form, for comparing */
	uint16_t port;                   /* TCP port of its cxfsd */
	bool may_serve;                  /* may be a metadata server */
	char *initiator;                 /* iSCSI initiator IQN, given or derived */
	size_t index;                    /* position among the nodes, from 0 */
	int line;                        /* line of its "node" keyword */
	int addr_line;                   /* line of its "address", 0 if none yet */
	int port_line;                   /* line of its "port", 0 for the default */
	int initiator_line;              /* line of its "initiator", 0 if derived */
	char *metrics;                   /* its "metrics" ADDR:PORT or "off", or NULL */
};

struct cms_fs {
	char *name;                      /* unique within the cluster */
	char **volumes;                  /* file paths and iscsi:// URIs */
	int *volume_lines;               /* the line naming each volume */
	size_t nvolumes;
	char **server_names;             /* the server order as written */
	const struct cms_node **servers; /* the same, resolved by the whole-file checks */
	size_t nservers;
	int servers_line;                /* line of its "servers", 0 if none */
	bool dmapi;                      /* DMAPI events on */
	char *options;                   /* mount options, or NULL */
	int line;                        /* line of its "filesystem" keyword */
};

struct cms_config {
	char *path;                      /* the file (or buffer name) parsed */
	char *cluster;                   /* the cluster's name */
	char *secret_path;               /* the secret file, resolved */
	uint8_t *secret;                 /* its bytes */
	size_t secret_len;
	struct cms_node **nodes;         /* in file order */
	size_t nnodes;
	struct cms_fs **fss;             /* in file order */
	size_t nfs;
	unsigned heartbeat_ms;           /* membership: heartbeat interval */
	unsigned dead_ms;                /* a node not heard for this long is dead */
	unsigned quorum_wait_ms;         /* requests wait this long for quorum, then EIO */
	enum cms_tie_breaker tie_breaker;
	unsigned write_behind_mb;        /* a client's dirty data cache bound (0: write through) */
	unsigned read_cache_mb;          /* a client's clean data cache bound (0: none) */
	char *metrics;                   /* the global "metrics" ADDR:PORT or "off", or NULL */
};

const char *cms_config_path(const struct cms_config *cfg) { return cfg->path; }
const char *cms_config_cluster(const struct cms_config *cfg) { return cfg->cluster; }
const char *cms_config_secret_path(const struct cms_config *cfg) { return cfg->secret_path; }

unsigned cms_config_heartbeat_ms(const struct cms_config *cfg) { return cfg->heartbeat_ms; }
unsigned cms_config_dead_ms(const struct cms_config *cfg) { return cfg->dead_ms; }
unsigned cms_config_quorum_wait_ms(const struct cms_config *cfg) { return cfg->quorum_wait_ms; }
enum cms_tie_breaker cms_config_tie_breaker(const struct cms_config *cfg) { return cfg->tie_breaker; }
unsigned cms_config_write_behind_mb(const struct cms_config *cfg) { return cfg->write_behind_mb; }

const char *cms_config_metrics(const struct cms_config *cfg, const struct cms_node *node)
{
	const char *m = node->metrics ? node->metrics : cfg->metrics;

	return m && strcmp(m, "off") != 0 ? m : NULL;
}
unsigned cms_config_read_cache_mb(const struct cms_config *cfg) { return cfg->read_cache_mb; }

const uint8_t *cms_config_secret(const struct cms_config *cfg, size_t *len)
{
	*len = cfg->secret_len;
	return cfg->secret;
}

size_t cms_config_node_count(const struct cms_config *cfg) { return cfg->nnodes; }

const struct cms_node *cms_config_node_at(const struct cms_config *cfg, size_t i)
{
	return i < cfg->nnodes ? cfg->nodes[i] : NULL;
}

const struct cms_node *cms_config_node(const struct cms_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nnodes; i++)
		if (strcmp(cfg->nodes[i]->name, name) == 0)
			return cfg->nodes[i];
	return NULL;
}

const char *cms_node_name(const struct cms_node *node) { return node->name; }
const char *cms_node_address(const struct cms_node *node) { return node->address; }
enum cms_addr_kind cms_node_addr_kind(const struct cms_node *node) { return node->kind; }
uint16_t cms_node_port(const struct cms_node *node) { return node->port; }
bool cms_node_may_serve(const struct cms_node *node) { return node->may_serve; }
const char *cms_node_initiator(const struct cms_node *node) { return node->initiator; }
size_t cms_node_index(const struct cms_node *node) { return node->index; }
int cms_node_line(const struct cms_node *node) { return node->line; }

size_t cms_config_fs_count(const struct cms_config *cfg) { return cfg->nfs; }

const struct cms_fs *cms_config_fs_at(const struct cms_config *cfg, size_t i)
{
	return i < cfg->nfs ? cfg->fss[i] : NULL;
}

const struct cms_fs *cms_config_fs(const struct cms_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nfs; i++)
		if (strcmp(cfg->fss[i]->name, name) == 0)
			return cfg->fss[i];
	return NULL;
}

const char *cms_fs_name(const struct cms_fs *fs) { return fs->name; }
size_t cms_fs_volume_count(const struct cms_fs *fs) { return fs->nvolumes; }

const char *cms_fs_volume(const struct cms_fs *fs, size_t i)
{
	return i < fs->nvolumes ? fs->volumes[i] : NULL;
}

size_t cms_fs_server_count(const struct cms_fs *fs) { return fs->nservers; }

const struct cms_node *cms_fs_server(const struct cms_fs *fs, size_t i)
{
	return i < fs->nservers ? fs->servers[i] : NULL;
}

bool cms_fs_dmapi(const struct cms_fs *fs) { return fs->dmapi; }
const char *cms_fs_options(const struct cms_fs *fs) { return fs->options; }
int cms_fs_line(const struct cms_fs *fs) { return fs->line; }

const struct cms_node *cms_fs_server_for(const struct cms_fs *fs, const bool *up, size_t nup)
{
	size_t i, idx;

	for (i = 0; i < fs->nservers; i++) {
		idx = fs->servers[i]->index;
		if (idx < nup && up[idx])
			return fs->servers[i];
	}
	return NULL;
}

static void cms__node_free(struct cms_node *node)
{
	if (!node)
		return;
	free(node->name);
	free(node->address);
	free(node->initiator);
	free(node->metrics);
	free(node);
}

static void cms__fs_free(struct cms_fs *fs)
{
	size_t i;

	if (!fs)
		return;
	for (i = 0; i < fs->nvolumes; i++)
		free(fs->volumes[i]);
	for (i = 0; i < fs->nservers; i++)
		free(fs->server_names[i]);
	free(fs->volumes);
	free(fs->volume_lines);
	free(fs->server_names);
	free(fs->servers);
	free(fs->name);
	free(fs->options);
	free(fs);
}

void cms_config_free(struct cms_config *cfg)
{
	size_t i;

	if (!cfg)
		return;
	for (i = 0; i < cfg->nnodes; i++)
		cms__node_free(cfg->nodes[i]);
	for (i = 0; i < cfg->nfs; i++)
		cms__fs_free(cfg->fss[i]);
	if (cfg->secret) {
		explicit_bzero(cfg->secret, cfg->secret_len);
		free(cfg->secret);
	}
	free(cfg->nodes);
	free(cfg->fss);
	free(cfg->path);
	free(cfg->cluster);
	free(cfg->secret_path);
	free(cfg->metrics);
	free(cfg);
}

/* 2. The keyword table and the parser's state. */

struct cms__parser;

/* Keyword handlers: @args are the words after the keyword. */
static int cms__kw_cluster(struct cms__parser *p, char **args, int nargs);
static int cms__kw_secret(struct cms__parser *p, char **args, int nargs);
static int cms__kw_node(struct cms__parser *p, char **args, int nargs);
static int cms__kw_address(struct cms__parser *p, char **args, int nargs);
static int cms__kw_port(struct cms__parser *p, char **args, int nargs);
static int cms__kw_serve(struct cms__parser *p, char **args, int nargs);
static int cms__kw_initiator(struct cms__parser *p, char **args, int nargs);
static int cms__kw_filesystem(struct cms__parser *p, char **args, int nargs);
static int cms__kw_volume(struct cms__parser *p, char **args, int nargs);
static int cms__kw_servers(struct cms__parser *p, char **args, int nargs);
static int cms__kw_dmapi(struct cms__parser *p, char **args, int nargs);
static int cms__kw_options(struct cms__parser *p, char **args, int nargs);
static int cms__kw_ms(struct cms__parser *p, char **args, int nargs);
static int cms__kw_mb(struct cms__parser *p, char **args, int nargs);
static int cms__kw_tie_breaker(struct cms__parser *p, char **args, int nargs);
static int cms__kw_metrics(struct cms__parser *p, char **args, int nargs);

/* Where a keyword may appear. */
enum cms__where {
	CMS__GLOBAL = 1,                 /* before the first section */
	CMS__NODE = 2,                   /* in a node section */
	CMS__FS = 4,                     /* in a filesystem section */
	CMS__ANYWHERE = 7,
};

struct cms__keyword {
	const char *word;                /* as written in the file */
	unsigned where;                  /* enum cms__where bits */
	int min_args;                    /* fewest values */
	int max_args;                    /* most values, 0 for no limit */
	bool repeat;                     /* may appear several times in one section */
	int (*handle)(struct cms__parser *p, char **args, int nargs);
};

static const struct cms__keyword cms__keywords[] = {
	{ "cluster",    CMS__GLOBAL,   1, 1, false, cms__kw_cluster },
	{ "secret",     CMS__GLOBAL,   1, 1, false, cms__kw_secret },
	{ "heartbeat",  CMS__GLOBAL,   1, 1, false, cms__kw_ms },
	{ "dead_after", CMS__GLOBAL,   1, 1, false, cms__kw_ms },
	{ "quorum_wait", CMS__GLOBAL,  1, 1, false, cms__kw_ms },
	{ "tie_breaker", CMS__GLOBAL,  1, 1, false, cms__kw_tie_breaker },
	{ "write_behind_mb", CMS__GLOBAL, 1, 1, false, cms__kw_mb },
	{ "read_cache_mb", CMS__GLOBAL, 1, 1, false, cms__kw_mb },
	{ "metrics",    CMS__GLOBAL | CMS__NODE, 1, 1, false, cms__kw_metrics },
	{ "node",       CMS__ANYWHERE, 1, 1, true,  cms__kw_node },
	{ "address",    CMS__NODE,     1, 1, false, cms__kw_address },
	{ "port",       CMS__NODE,     1, 1, false, cms__kw_port },
	{ "serve",      CMS__NODE,     1, 1, false, cms__kw_serve },
	{ "initiator",  CMS__NODE,     1, 1, false, cms__kw_initiator },
	{ "filesystem", CMS__ANYWHERE, 1, 1, true,  cms__kw_filesystem },
	{ "volume",     CMS__FS,       1, 0, true,  cms__kw_volume },
	{ "servers",    CMS__FS,       1, 0, false, cms__kw_servers },
	{ "dmapi",      CMS__FS,       1, 1, false, cms__kw_dmapi },
	{ "options",    CMS__FS,       1, 1, false, cms__kw_options },
};

#define CMS__NKEYWORDS (sizeof(cms__keywords) / sizeof(cms__keywords[0]))

struct cms__parser {
	struct cms_config *cfg;          /* the configuration being built */
	const char *name;                /* the file's name, for messages */
	char *err;                       /* the caller's message buffer */
	size_t errlen;
	int line;                        /* the line being read, from 1 */
	struct cms_node *node;           /* the open node section, or NULL */
	struct cms_fs *fs;               /* the open filesystem section, or NULL */
	int seen[CMS__NKEYWORDS];        /* line of each keyword in this section, or 0 */
	int cluster_line;                /* line of "cluster", or 0 */
	int secret_line;                 /* line of "secret", or 0 */
	const char *line_kw;             /* the keyword of the line being read */
};

/* 3. Messages and lexical checks. */

/* Write "FILE:LINE: message" into the caller's buffer and return @rc. */
__attribute__((format(printf, 4, 5)))
static int cms__fail(struct cms__parser *p, int line, int rc, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!p->err || p->errlen == 0)
		return rc;
	n = snprintf(p->err, p->errlen, "%s:%d: ", p->name, line);
	if (n >= 0 && (size_t)n < p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static int cms__nomem(struct cms__parser *p)
{
	return cms__fail(p, p->line, -ENOMEM, "out of memory");
}

/* Append the string @item to the array *@arr of *@n strings. */
static int cms__push_str(char ***arr, size_t *n, char *item)
{
	char **grown = reallocarray(*arr, *n + 1, sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	grown[(*n)++] = item;
	*arr = grown;
	return 0;
}

/* A cluster, node or filesystem name: [A-Za-z0-9][A-Za-z0-9._-]*, at most CMS_NAME_MAX. */
static bool cms__name_ok(const char *s)
{
	size_t i, len = strlen(s);

	if (len == 0 || len > CMS_NAME_MAX || !isalnum((unsigned char)s[0]))
		return false;
	for (i = 1; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

static int cms__check_name(struct cms__parser *p, const char *what, const char *s)
{
	if (cms__name_ok(s))
		return 0;
	return cms__fail(p, p->line, -EINVAL,
			 "bad %s name \"%s\": use at most %d letters, digits, '.', '_' and '-', "
			 "starting with a letter or digit", what, s, CMS_NAME_MAX);
}

/* yes/on or no/off. */
static int cms__parse_bool(struct cms__parser *p, const char *kw, const char *s, bool *out)
{
	if (strcmp(s, "yes") == 0 || strcmp(s, "on") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(s, "no") == 0 || strcmp(s, "off") == 0) {
		*out = false;
		return 0;
	}
	return cms__fail(p, p->line, -EINVAL, "\"%s\" takes yes or no (on or off), not \"%s\"", kw, s);
}

/* A decimal number of 1 to @maxdigits digits in [@s, @end), at most @max. */
static bool cms__parse_num(const char *s, const char *end, int maxdigits, unsigned long max,
			   unsigned long *out)
{
	unsigned long v = 0;

	if (end <= s || end - s > maxdigits)
		return false;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

static bool cms__parse_port(const char *s, const char *end, uint16_t *out)
{
	unsigned long v;

	if (!cms__parse_num(s, end, 5, 65535, &v) || v == 0)
		return false;
	*out = (uint16_t)v;
	return true;
}

/* A host name: dot-separated labels of letters, digits and inner '-'. */
static bool cms__host_ok(const char *s, size_t len)
{
	size_t i, label = 0;

	if (len == 0 || len > CMS__HOST_MAX)
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)s[i]) && !(s[i] == '-' && label > 0))
			return false;
		if (++label > 63)
			return false;
	}
	return s[len - 1] != '.' && s[len - 1] != '-';
}

/*
 * Classify the address in @s[0..@len): "[v6]" or a bare IPv6 literal, a
 * dotted-quad IPv4 literal, or a host name.  A literal's binary form goes to
 * @bin, and @plain/@plainlen get the address without brackets.
 */
static int cms__parse_addr(const char *s, size_t len, enum cms_addr_kind *kind,
			   unsigned char bin[16], const char **plain, size_t *plainlen)
{
	char buf[CMS__HOST_MAX + 1];
	size_t i;
	bool numeric = true;

	if (len >= 2 && s[0] == '[') {
		if (s[len - 1] != ']')
			return -EINVAL;
		s++;
		len -= 2;
		if (len == 0 || len > CMS__HOST_MAX || memchr(s, ':', len) == NULL)
			return -EINVAL;
	}
	if (len == 0 || len > CMS__HOST_MAX)
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	*plain = s;
	*plainlen = len;
	memset(bin, 0, 16);
	if (memchr(s, ':', len)) {
		*kind = CMS_ADDR_IPV6;
		return inet_pton(AF_INET6, buf, bin) == 1 ? 0 : -EINVAL;
	}
	for (i = 0; i < len; i++)
		if (s[i] != '.' && (s[i] < '0' || s[i] > '9'))
			numeric = false;
	if (numeric) {
		*kind = CMS_ADDR_IPV4;
		return inet_pton(AF_INET, buf, bin) == 1 ? 0 : -EINVAL;
	}
	*kind = CMS_ADDR_HOST;
	return cms__host_ok(s, len) ? 0 : -EINVAL;
}

/* An iSCSI name (iqn., eui. or naa. and letters, digits, '.', ':', '-'); NULL if fine. */
static const char *cms__iqn_problem(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return "it is empty";
	if (len > CMS__IQN_MAX)
		return "it is longer than 223 bytes";
	if (len < 5 || (strncasecmp(s, "iqn.", 4) != 0 && strncasecmp(s, "eui.", 4) != 0 &&
			strncasecmp(s, "naa.", 4) != 0))
		return "an iSCSI name starts with iqn., eui. or naa.";
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr(".:-", s[i]))
			return "an iSCSI name holds only letters, digits, '.', ':' and '-'";
	return NULL;
}

/* "iscsi://HOST[:PORT]/IQN/LUN"; NULL if fine, else what is wrong. */
static const char *cms__iscsi_problem(const char *uri)
{
	const char *host = uri + strlen("iscsi://");
	const char *slash, *last, *hend, *plain;
	enum cms_addr_kind kind;
	unsigned char bin[16];
	unsigned long lun;
	size_t plainlen;
	uint16_t port;

	slash = strchr(host, '/');
	if (!slash)
		return "no target IQN";
	hend = slash;
	if (host[0] == '[') {
		hend = memchr(host, ']', (size_t)(slash - host));
		if (!hend)
			return "an IPv6 host needs its closing ']'";
		hend++;
	} else if (memchr(host, ':', (size_t)(slash - host))) {
		hend = memchr(host, ':', (size_t)(slash - host));
	}
	if (cms__parse_addr(host, (size_t)(hend - host), &kind, bin, &plain, &plainlen) < 0)
		return "bad host";
	if (hend != slash && (*hend != ':' || !cms__parse_port(hend + 1, slash, &port)))
		return "bad port (1-65535)";
	last = strrchr(slash, '/');
	if (last == slash)
		return "no LUN after the target IQN";
	if (memchr(slash + 1, '/', (size_t)(last - slash - 1)))
		return "too many '/'";
	if (cms__iqn_problem(slash + 1, (size_t)(last - slash - 1)))
		return "bad target IQN";
	if (!cms__parse_num(last + 1, last + strlen(last), 5, CMS__LUN_MAX, &lun))
		return "bad LUN (0-16383)";
	return NULL;
}

/* 4. The keyword handlers and the line splitter. */

static int cms__kw_cluster(struct cms__parser *p, char **args, int nargs)
{
	int rc = cms__check_name(p, "cluster", args[0]);

	if (rc < 0)
		return rc;
	p->cfg->cluster = strdup(args[0]);
	p->cluster_line = p->line;
	return p->cfg->cluster ? 0 : cms__nomem(p);
}

static int cms__kw_secret(struct cms__parser *p, char **args, int nargs)
{
	const char *slash = strrchr(p->name, '/');
	int rc;

	/* A relative path is relative to the configuration file's directory. */
	if (args[0][0] != '/' && slash)
		rc = asprintf(&p->cfg->secret_path, "%.*s/%s", (int)(slash - p->name), p->name, args[0]);
	else
		rc = asprintf(&p->cfg->secret_path, "%s", args[0]);
	if (rc < 0) {
		p->cfg->secret_path = NULL;
		return cms__nomem(p);
	}
	p->secret_line = p->line;
	return 0;
}

static int cms__kw_node(struct cms__parser *p, char **args, int nargs)
{
	struct cms_node *node, **nodes;
	size_t i;
	int rc;

	rc = cms__check_name(p, "node", args[0]);
	if (rc < 0)
		return rc;
	for (i = 0; i < p->cfg->nnodes; i++)
		if (strcmp(p->cfg->nodes[i]->name, args[0]) == 0)
			return cms__fail(p, p->line, -EINVAL, "node \"%s\" listed twice (first at line %d)",
					 args[0], p->cfg->nodes[i]->line);
	node = calloc(1, sizeof(*node));
	if (!node)
		return cms__nomem(p);
	node->name = strdup(args[0]);
	node->port = CMS_DEFAULT_PORT;
	node->index = p->cfg->nnodes;
	node->line = p->line;
	nodes = reallocarray(p->cfg->nodes, p->cfg->nnodes + 1, sizeof(*nodes));
	if (!node->name || !nodes) {
		cms__node_free(node);
		return cms__nomem(p);
	}
	nodes[p->cfg->nnodes++] = node;
	p->cfg->nodes = nodes;
	memset(p->seen, 0, sizeof(p->seen));
	p->node = node;
	p->fs = NULL;
	return 0;
}

static int cms__kw_address(struct cms__parser *p, char **args, int nargs)
{
	struct cms_node *node = p->node;
	const char *plain;
	size_t plainlen;

	if (cms__parse_addr(args[0], strlen(args[0]), &node->kind, node->bin, &plain, &plainlen) < 0)
		return cms__fail(p, p->line, -EINVAL,
				 "bad address \"%s\": want an IPv4 or IPv6 literal or a host name", args[0]);
	node->address = strndup(plain, plainlen);
	node->addr_line = p->line;
	return node->address ? 0 : cms__nomem(p);
}

static int cms__kw_port(struct cms__parser *p, char **args, int nargs)
{
	if (!cms__parse_port(args[0], args[0] + strlen(args[0]), &p->node->port))
		return cms__fail(p, p->line, -EINVAL, "bad port \"%s\": want a number from 1 to 65535",
				 args[0]);
	p->node->port_line = p->line;
	return 0;
}

static int cms__kw_serve(struct cms__parser *p, char **args, int nargs)
{
	return cms__parse_bool(p, "serve", args[0], &p->node->may_serve);
}

static int cms__kw_initiator(struct cms__parser *p, char **args, int nargs)
{
	const char *why = cms__iqn_problem(args[0], strlen(args[0]));

	if (why)
		return cms__fail(p, p->line, -EINVAL, "bad initiator name \"%s\": %s", args[0], why);
	p->node->initiator = strdup(args[0]);
	p->node->initiator_line = p->line;
	return p->node->initiator ? 0 : cms__nomem(p);
}

static int cms__kw_filesystem(struct cms__parser *p, char **args, int nargs)
{
	struct cms_fs *fs, **fss;
	size_t i;
	int rc;

	rc = cms__check_name(p, "filesystem", args[0]);
	if (rc < 0)
		return rc;
	for (i = 0; i < p->cfg->nfs; i++)
		if (strcmp(p->cfg->fss[i]->name, args[0]) == 0)
			return cms__fail(p, p->line, -EINVAL,
					 "filesystem \"%s\" listed twice (first at line %d)",
					 args[0], p->cfg->fss[i]->line);
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return cms__nomem(p);
	fs->name = strdup(args[0]);
	fs->line = p->line;
	fss = reallocarray(p->cfg->fss, p->cfg->nfs + 1, sizeof(*fss));
	if (!fs->name || !fss) {
		cms__fs_free(fs);
		return cms__nomem(p);
	}
	fss[p->cfg->nfs++] = fs;
	p->cfg->fss = fss;
	memset(p->seen, 0, sizeof(p->seen));
	p->fs = fs;
	p->node = NULL;
	return 0;
}

/* The line where @uri was already named as a volume, or 0; *@owner gets its filesystem. */
static int cms__volume_line(const struct cms_config *cfg, const char *uri, const struct cms_fs **owner)
{
	size_t i, j;

	for (i = 0; i < cfg->nfs; i++)
		for (j = 0; j < cfg->fss[i]->nvolumes; j++)
			if (strcmp(cfg->fss[i]->volumes[j], uri) == 0) {
				*owner = cfg->fss[i];
				return cfg->fss[i]->volume_lines[j];
			}
	return 0;
}

static int cms__kw_volume(struct cms__parser *p, char **args, int nargs)
{
	struct cms_fs *fs = p->fs;
	const struct cms_fs *owner = NULL;
	const char *why;
	int i, *lines, first;
	char *copy;

	for (i = 0; i < nargs; i++) {
		if (strncmp(args[i], "iscsi://", 8) == 0) {
			why = cms__iscsi_problem(args[i]);
			if (why)
				return cms__fail(p, p->line, -EINVAL,
						 "bad volume URI \"%s\": %s (want iscsi://HOST[:PORT]/IQN/LUN)",
						 args[i], why);
		} else if (args[i][0] != '/' || strstr(args[i], "://")) {
			return cms__fail(p, p->line, -EINVAL,
					 "bad volume \"%s\": want an absolute file path or "
					 "iscsi://HOST[:PORT]/IQN/LUN", args[i]);
		}
		first = cms__volume_line(p->cfg, args[i], &owner);
		if (first)
			return cms__fail(p, p->line, -EINVAL,
					 "volume \"%s\" listed twice (first at line %d, filesystem \"%s\")",
					 args[i], first, owner->name);
		lines = reallocarray(fs->volume_lines, fs->nvolumes + 1, sizeof(int));
		if (!lines)
			return cms__nomem(p);
		fs->volume_lines = lines;
		lines[fs->nvolumes] = p->line;
		copy = strdup(args[i]);
		if (!copy || cms__push_str(&fs->volumes, &fs->nvolumes, copy) < 0) {
			free(copy);
			return cms__nomem(p);
		}
	}
	return 0;
}

static int cms__kw_servers(struct cms__parser *p, char **args, int nargs)
{
	struct cms_fs *fs = p->fs;
	char *copy;
	int i, j;

	for (i = 0; i < nargs; i++) {
		for (j = 0; j < i; j++)
			if (strcmp(args[i], args[j]) == 0)
				return cms__fail(p, p->line, -EINVAL,
						 "node \"%s\" listed twice in the server order", args[i]);
		copy = strdup(args[i]);
		if (!copy || cms__push_str(&fs->server_names, &fs->nservers, copy) < 0) {
			free(copy);
			return cms__nomem(p);
		}
	}
	fs->servers = calloc(fs->nservers, sizeof(*fs->servers));
	fs->servers_line = p->line;
	return fs->servers ? 0 : cms__nomem(p);
}

static int cms__kw_dmapi(struct cms__parser *p, char **args, int nargs)
{
	return cms__parse_bool(p, "dmapi", args[0], &p->fs->dmapi);
}

/* A comma-separated list of non-empty options. */
static int cms__kw_options(struct cms__parser *p, char **args, int nargs)
{
	const char *s = args[0];
	size_t len = strlen(s);

	if (s[0] == ',' || s[len - 1] == ',' || strstr(s, ",,"))
		return cms__fail(p, p->line, -EINVAL,
				 "bad mount options \"%s\": want OPTION[,OPTION...] with no empty option", s);
	p->fs->options = strdup(s);
	return p->fs->options ? 0 : cms__nomem(p);
}

/*
 * A duration of the membership: "250ms", "1.5s" is not taken; "2s" or a
 * bare number of milliseconds.  heartbeat 10 ms to 10 s, dead_after 3
 * heartbeats to 120 s (checked with the heartbeat at the end), quorum_wait
 * 0 to 1 day.
 */
static int cms__kw_ms(struct cms__parser *p, char **args, int nargs)
{
	const char *kw = p->line_kw, *s = args[0], *end = s + strlen(s);
	unsigned long v, mult = 1, max = 86400000UL;
	unsigned *out = &p->cfg->quorum_wait_ms;

	if (end - s > 2 && strcmp(end - 2, "ms") == 0) {
		end -= 2;
	} else if (end - s > 1 && end[-1] == 's') {
		end--;
		mult = 1000;
	}
	if (strcmp(kw, "heartbeat") == 0) {
		out = &p->cfg->heartbeat_ms;
		max = 10000;
	} else if (strcmp(kw, "dead_after") == 0) {
		out = &p->cfg->dead_ms;
		max = 120000;
	}
	if (!cms__parse_num(s, end, 9, max, &v) || v * mult > max ||
	    (out == &p->cfg->heartbeat_ms && v * mult < 10))
		return cms__fail(p, p->line, -EINVAL,
				 "bad %s \"%s\": want milliseconds (\"250\", \"250ms\") or seconds (\"2s\"), "
				 "%s to %lu ms", kw, args[0], out == &p->cfg->heartbeat_ms ? "10" : "0", max);
	*out = (unsigned)(v * mult);
	return 0;
}

/* A data cache bound in MiB: write_behind_mb, read_cache_mb; 0 to 65536 (0: off). */
static int cms__kw_mb(struct cms__parser *p, char **args, int nargs)
{
	const char *kw = p->line_kw, *s = args[0];
	unsigned *out = strcmp(kw, "write_behind_mb") == 0 ? &p->cfg->write_behind_mb :
							      &p->cfg->read_cache_mb;
	unsigned long v;

	if (!cms__parse_num(s, s + strlen(s), 5, CMS_CACHE_MB_MAX, &v))
		return cms__fail(p, p->line, -EINVAL, "bad %s \"%s\": want MiB, 0 to %u", kw, s,
				 CMS_CACHE_MB_MAX);
	*out = (unsigned)v;
	return 0;
}

/* The Prometheus endpoint: ADDR:PORT (numeric) or "off"; globally or per node. */
static int cms__kw_metrics(struct cms__parser *p, char **args, int nargs)
{
	char **out = p->node ? &p->node->metrics : &p->cfg->metrics;
	struct sockaddr_storage ss;
	socklen_t len;

	if (strcmp(args[0], "off") != 0 && cx_parse_listen(args[0], &ss, &len))
		return cms__fail(p, p->line, -EINVAL, "bad metrics \"%s\": want ADDR:PORT "
				 "(numeric, e.g. 127.0.0.1:9420 or [::1]:9420) or off", args[0]);
	*out = strdup(args[0]);
	return *out ? 0 : cms__nomem(p);
}

static int cms__kw_tie_breaker(struct cms__parser *p, char **args, int nargs)
{
	if (strcmp(args[0], "disk") == 0)
		p->cfg->tie_breaker = CMS_TIE_DISK;
	else if (strcmp(args[0], "none") == 0)
		p->cfg->tie_breaker = CMS_TIE_NONE;
	else
		return cms__fail(p, p->line, -EINVAL, "bad tie_breaker \"%s\": want disk or none",
				 args[0]);
	return 0;
}

/* Split one line (NUL-terminated, no newline) into words and run its keyword. */
static int cms__line(struct cms__parser *p, char *text)
{
	char *words[CMS__WORDS_MAX];
	const struct cms__keyword *kw = NULL;
	unsigned where;
	int n = 0;
	size_t i;

	for (i = 0; text[i]; i++) {
		unsigned char c = (unsigned char)text[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return cms__fail(p, p->line, -EINVAL, "control character 0x%02x in the line", c);
	}
	for (;;) {
		while (*text == ' ' || *text == '\t')
			text++;
		if (*text == '\0' || *text == '#')
			break;
		if (n == CMS__WORDS_MAX)
			return cms__fail(p, p->line, -EINVAL, "more than %d words on one line", CMS__WORDS_MAX);
		words[n++] = text;
		text += strcspn(text, " \t");
		if (*text)
			*text++ = '\0';
	}
	if (n == 0)
		return 0;

	for (i = 0; i < CMS__NKEYWORDS; i++)
		if (strcmp(words[0], cms__keywords[i].word) == 0)
			kw = &cms__keywords[i];
	if (!kw)
		return cms__fail(p, p->line, -EINVAL, "unknown keyword \"%s\"", words[0]);
	i = (size_t)(kw - cms__keywords);

	where = p->node ? CMS__NODE : p->fs ? CMS__FS : CMS__GLOBAL;
	if (!(kw->where & where)) {
		if (kw->where == CMS__GLOBAL)
			return cms__fail(p, p->line, -EINVAL,
					 "\"%s\" belongs before the first node or filesystem section", kw->word);
		if (where == CMS__GLOBAL)
			return cms__fail(p, p->line, -EINVAL, "\"%s\" outside a %s section", kw->word,
					 kw->where == CMS__NODE ? "node" : "filesystem");
		return cms__fail(p, p->line, -EINVAL, "\"%s\" is not a %s setting (%s \"%s\" begins at line %d)",
				 kw->word, p->node ? "node" : "filesystem", p->node ? "node" : "filesystem",
				 p->node ? p->node->name : p->fs->name, p->node ? p->node->line : p->fs->line);
	}
	if (n - 1 < kw->min_args || (kw->max_args && n - 1 > kw->max_args)) {
		if (kw->max_args == 1)
			return cms__fail(p, p->line, -EINVAL, "\"%s\" takes one value, not %d", kw->word, n - 1);
		return cms__fail(p, p->line, -EINVAL, "\"%s\" needs at least one value", kw->word);
	}
	if (!kw->repeat && p->seen[i])
		return cms__fail(p, p->line, -EINVAL, "\"%s\" given twice (first at line %d)", kw->word,
				 p->seen[i]);
	p->seen[i] = p->line;
	p->line_kw = kw->word;
	return kw->handle(p, words + 1, n - 1);
}

/* 5. Whole-file checks. */

static bool cms__same_address(const struct cms_node *a, const struct cms_node *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == CMS_ADDR_HOST)
		return strcasecmp(a->address, b->address) == 0;
	return memcmp(a->bin, b->bin, sizeof(a->bin)) == 0;
}

/* The default initiator name: the prefix, then "CLUSTER.NODE" in lower case, '_' as '-'. */
static int cms__derive_initiator(struct cms__parser *p, struct cms_node *node)
{
	char *s;

	if (asprintf(&node->initiator, "%s%s.%s", CMS_INITIATOR_PREFIX, p->cfg->cluster, node->name) < 0) {
		node->initiator = NULL;
		return cms__nomem(p);
	}
	for (s = node->initiator + strlen(CMS_INITIATOR_PREFIX); *s; s++)
		*s = *s == '_' ? '-' : (char)tolower((unsigned char)*s);
	return 0;
}

static int cms__check_nodes(struct cms__parser *p)
{
	struct cms_config *cfg = p->cfg;
	struct cms_node *a, *b;
	size_t i, j;
	int rc;

	if (cfg->nnodes == 0)
		return cms__fail(p, p->line, -EINVAL, "no node sections (want at least one \"node NAME\")");
	for (i = 0; i < cfg->nnodes; i++) {
		b = cfg->nodes[i];
		if (!b->address)
			return cms__fail(p, b->line, -EINVAL, "node \"%s\" has no address", b->name);
		if (!b->initiator) {
			rc = cms__derive_initiator(p, b);
			if (rc < 0)
				return rc;
		}
		for (j = 0; j < i; j++) {
			a = cfg->nodes[j];
			if (a->port == b->port && cms__same_address(a, b))
				return cms__fail(p, b->port_line ? b->port_line : b->addr_line, -EINVAL,
						 "node \"%s\" uses port %u on %s, as node \"%s\" (line %d) does",
						 b->name, b->port, b->address, a->name, a->line);
			if (strcasecmp(a->initiator, b->initiator) == 0)
				return cms__fail(p, b->initiator_line ? b->initiator_line : b->line, -EINVAL,
						 "node \"%s\" has the iSCSI initiator name %s of node \"%s\" "
						 "(line %d); give one of them its own \"initiator\"",
						 b->name, b->initiator, a->name, a->line);
		}
	}
	return 0;
}

static int cms__check_filesystems(struct cms__parser *p)
{
	struct cms_config *cfg = p->cfg;
	const struct cms_node *node;
	struct cms_fs *fs;
	size_t i, j;

	for (i = 0; i < cfg->nfs; i++) {
		fs = cfg->fss[i];
		if (fs->nvolumes == 0)
			return cms__fail(p, fs->line, -EINVAL, "filesystem \"%s\" has no volume", fs->name);
		if (fs->nservers == 0)
			return cms__fail(p, fs->line, -EINVAL,
					 "filesystem \"%s\" has no server order (\"servers NODE...\")", fs->name);
		for (j = 0; j < fs->nservers; j++) {
			node = cms_config_node(cfg, fs->server_names[j]);
			if (!node)
				return cms__fail(p, fs->servers_line, -EINVAL,
						 "server order of filesystem \"%s\" names node \"%s\", "
						 "which is not in the configuration", fs->name, fs->server_names[j]);
			if (!node->may_serve)
				return cms__fail(p, fs->servers_line, -EINVAL,
						 "server order of filesystem \"%s\" names node \"%s\", "
						 "which may not serve (its section, line %d, lacks \"serve yes\")",
						 fs->name, node->name, node->line);
			fs->servers[j] = node;
		}
	}
	return 0;
}

/*
 * Read the secret file: a regular file that only its owner (this user or
 * root) may access, of CMS_SECRET_MIN to CMS_SECRET_MAX bytes, all of which
 * are the key.
 */
static int cms__read_secret(struct cms__parser *p)
{
	struct cms_config *cfg = p->cfg;
	const char *path = cfg->secret_path;
	uint8_t buf[CMS_SECRET_MAX + 1];
	size_t len = 0;
	struct stat st;
	ssize_t got;
	int fd, rc;

	/* O_NONBLOCK: a FIFO named by mistake must not hang the daemon. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		return cms__fail(p, p->secret_line, rc, "secret file %s: %s", path, strerror(-rc));
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		cms__fail(p, p->secret_line, rc, "secret file %s: %s", path, strerror(-rc));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = cms__fail(p, p->secret_line, -EINVAL, "secret file %s is not a regular file", path);
		goto out_close;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		rc = cms__fail(p, p->secret_line, -EPERM,
			       "secret file %s is open to group or others (mode %04o); run: chmod 600 %s",
			       path, (unsigned)(st.st_mode & 07777), path);
		goto out_close;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		rc = cms__fail(p, p->secret_line, -EPERM,
			       "secret file %s belongs to uid %u, neither this user nor root",
			       path, (unsigned)st.st_uid);
		goto out_close;
	}
	while (len < sizeof(buf)) {
		got = read(fd, buf + len, sizeof(buf) - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = -errno;
			cms__fail(p, p->secret_line, rc, "secret file %s: %s", path, strerror(-rc));
			goto out_wipe;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	if (len == 0) {
		rc = cms__fail(p, p->secret_line, -EINVAL,
			       "secret file %s is empty; make one with: head -c 64 /dev/urandom > %s", path, path);
		goto out_wipe;
	}
	if (len < CMS_SECRET_MIN) {
		rc = cms__fail(p, p->secret_line, -EINVAL,
			       "secret file %s holds %zu bytes, fewer than %d; make one with: "
			       "head -c 64 /dev/urandom > %s", path, len, CMS_SECRET_MIN, path);
		goto out_wipe;
	}
	if (len > CMS_SECRET_MAX) {
		rc = cms__fail(p, p->secret_line, -EINVAL, "secret file %s is larger than %d bytes",
			       path, CMS_SECRET_MAX);
		goto out_wipe;
	}
	cfg->secret = malloc(len);
	if (!cfg->secret) {
		rc = cms__nomem(p);
		goto out_wipe;
	}
	memcpy(cfg->secret, buf, len);
	cfg->secret_len = len;
	rc = 0;
out_wipe:
	explicit_bzero(buf, sizeof(buf));
out_close:
	close(fd);
	return rc;
}

static int cms__finish(struct cms__parser *p)
{
	int last = p->line > 0 ? p->line : 1;
	int rc;

	if (!p->cluster_line)
		return cms__fail(p, last, -EINVAL, "no \"cluster NAME\" line before the first section");
	if (!p->secret_line)
		return cms__fail(p, last, -EINVAL, "no \"secret FILE\" line before the first section");
	if (p->cfg->dead_ms < 3 * p->cfg->heartbeat_ms)
		return cms__fail(p, last, -EINVAL,
				 "dead_after %u ms is less than 3 heartbeats (heartbeat %u ms): "
				 "one lost datagram would declare a node dead",
				 p->cfg->dead_ms, p->cfg->heartbeat_ms);
	rc = cms__check_nodes(p);
	if (rc < 0)
		return rc;
	rc = cms__check_filesystems(p);
	if (rc < 0)
		return rc;
	return cms__read_secret(p);
}

/* 6. The entry points. */

int cms_config_parse(const char *name, const char *buf, size_t len, struct cms_config **out,
		     char *err, size_t errlen)
{
	struct cms__parser p = { .name = name, .err = err, .errlen = errlen };
	char text[CMS__LINE_MAX + 1];
	const char *pos = buf, *end = buf + len, *eol;
	size_t n;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	p.cfg = calloc(1, sizeof(*p.cfg));
	if (!p.cfg)
		return cms__nomem(&p);
	p.cfg->heartbeat_ms = CMS_HEARTBEAT_MS;
	p.cfg->dead_ms = CMS_DEAD_MS;
	p.cfg->quorum_wait_ms = CMS_QUORUM_WAIT_MS;
	p.cfg->tie_breaker = CMS_TIE_DISK;
	p.cfg->write_behind_mb = CMS_WRITE_BEHIND_MB;
	p.cfg->read_cache_mb = CMS_READ_CACHE_MB;
	p.cfg->path = strdup(name);
	if (!p.cfg->path) {
		rc = cms__nomem(&p);
		goto out_free;
	}
	while (pos < end) {
		p.line++;
		eol = memchr(pos, '\n', (size_t)(end - pos));
		n = (size_t)((eol ? eol : end) - pos);
		if (n > 0 && pos[n - 1] == '\r')
			n--;
		if (n > CMS__LINE_MAX) {
			rc = cms__fail(&p, p.line, -EINVAL, "line longer than %d bytes", CMS__LINE_MAX);
			goto out_free;
		}
		if (memchr(pos, '\0', n)) {
			rc = cms__fail(&p, p.line, -EINVAL, "control character 0x00 in the line");
			goto out_free;
		}
		memcpy(text, pos, n);
		text[n] = '\0';
		rc = cms__line(&p, text);
		if (rc < 0)
			goto out_free;
		pos = eol ? eol + 1 : end;
	}
	rc = cms__finish(&p);
	if (rc < 0)
		goto out_free;
	*out = p.cfg;
	return 0;
out_free:
	cms_config_free(p.cfg);
	return rc;
}

int cms_config_load(const char *path, struct cms_config **out, char *err, size_t errlen)
{
	char *buf;
	size_t len = 0;
	ssize_t got;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	/* Read at most one byte past the limit, to tell a file that is too large. */
	buf = malloc(CMS__FILE_MAX + 1);
	if (!buf) {
		rc = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto out_close;
	}
	while (len <= CMS__FILE_MAX) {
		got = read(fd, buf + len, CMS__FILE_MAX + 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
			goto out_free;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	if (len > CMS__FILE_MAX) {
		rc = -EFBIG;
		snprintf(err, errlen, "%s: larger than %u bytes, too large for a cluster configuration",
			 path, CMS__FILE_MAX);
		goto out_free;
	}
	rc = cms_config_parse(path, buf, len, out, err, errlen);
out_free:
	free(buf);
out_close:
	close(fd);
	return rc;
}

int cms_config_self(const struct cms_config *cfg, const char *name, const struct cms_node **out,
		    char *err, size_t errlen)
{
	const struct cms_node *node = name ? cms_config_node(cfg, name) : NULL;
	size_t i, used;
	int n;

	if (node) {
		*out = node;
		return 0;
	}
	if (!err || errlen == 0)
		return -ENOENT;
	if (name)
		n = snprintf(err, errlen, "%s: no node named \"%s\"; the nodes are", cfg->path, name);
	else
		n = snprintf(err, errlen, "%s: no node name given; the nodes are", cfg->path);
	for (i = 0; i < cfg->nnodes && n >= 0 && (size_t)n < errlen; i++) {
		used = (size_t)n;
		n = snprintf(err + used, errlen - used, "%s %s (line %d)", i ? "," : "",
			     cfg->nodes[i]->name, cfg->nodes[i]->line);
		n = n < 0 ? n : n + (int)used;
	}
	return -ENOENT;
}
