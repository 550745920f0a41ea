/*
 * test_cms_config.c - unit tests of the cluster configuration
 * (src/membership/cms_config.c).
 *
 * Sections:
 *   1. fixtures: a mkdtemp directory holding secret files (a good 0600 one,
 *      one open to the world, an empty one, short ones), and a helper that
 *      puts the good secret's path into a configuration text for "%SECRET%";
 *   2. a full valid configuration read back through every accessor, the
 *      same through cms_config_load() from a file with a relative secret,
 *      and the example of docs/cluster.conf.md;
 *   3. comments, blank lines, tabs, CRLF and a missing final newline;
 *   4. every refusal, each with the exact "cluster.conf:LINE: message" and
 *      errno, from a table; cms_config_self() for a name not in the file;
 *   5. the secret file checks;
 *   6. the name service's choice of server for various sets of up nodes;
 *   7. robustness: every truncation and thousands of random byte changes of
 *      the valid configuration either parse or fail with a line number
 *      (meant to run under ASan as well).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "membership/cms_config.h"

/* 1. Fixtures. */

struct fixture {
	char dir[64];                    /* the temporary directory */
	char secret[128];                /* a good secret file: 64 bytes, 0600 */
	uint8_t key[64];                 /* its bytes */
};

static struct fixture fx;

/* Create @name in the fixture directory with @len bytes of @data and @mode. */
static void make_file(char *path, size_t pathlen, const char *name, const void *data, size_t len,
		      mode_t mode)
{
	int fd;

	snprintf(path, pathlen, "%s/%s", fx.dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static int group_setup(void **state)
{
	size_t i;

	{
		/* mkdtemp() replaces six trailing 'X's with a unique name */
		size_t n = (size_t)snprintf(fx.dir, sizeof(fx.dir), "/tmp/test_cms_config.");

		memset(fx.dir + n, 'X', 6);
		fx.dir[n + 6] = '\0';
	}
	if (!mkdtemp(fx.dir))
		return -1;
	for (i = 0; i < sizeof(fx.key); i++)
		fx.key[i] = (uint8_t)(i * 37 + 11);
	make_file(fx.secret, sizeof(fx.secret), "cluster.key", fx.key, sizeof(fx.key), 0600);
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* @text with every "%SECRET%" replaced by @secret; caller must free. */
static char *with_secret(const char *text, const char *secret)
{
	static const char mark[] = "%SECRET%";
	size_t cap = strlen(text) + 1;
	const char *s;
	char *out, *o;

	for (s = strstr(text, mark); s; s = strstr(s + 1, mark))
		cap += strlen(secret);
	out = malloc(cap);
	assert_non_null(out);
	for (o = out; *text;) {
		if (strncmp(text, mark, sizeof(mark) - 1) == 0) {
			o = stpcpy(o, secret);
			text += sizeof(mark) - 1;
		} else {
			*o++ = *text++;
		}
	}
	*o = '\0';
	return out;
}

/* Parse @text as "cluster.conf" with the good secret. */
static int parse_text(const char *text, struct cms_config **cfg, char *err, size_t errlen)
{
	char *full = with_secret(text, fx.secret);
	int rc = cms_config_parse("cluster.conf", full, strlen(full), cfg, err, errlen);

	free(full);
	return rc;
}

/* 2. A full valid configuration. */

static const char valid_conf[] =
	"# Cluster configuration for the tests.\n"                          /* 1 */
	"cluster prod\n"                                                    /* 2 */
	"secret  %SECRET%\n"                                                /* 3 */
	"\n"                                                                /* 4 */
	"node alpha\n"                                                      /* 5 */
	"    address 10.0.0.1\n"                                            /* 6 */
	"    port    7400\n"                                                /* 7 */
	"    serve   yes\n"                                                 /* 8 */
	"\n"                                                                /* 9 */
	"node beta\n"                                                       /* 10 */
	"    address   10.0.0.2\n"                                          /* 11 */
	"    serve     yes\n"                                               /* 12 */
	"    initiator iqn.2026-11.org.example:beta\n"                      /* 13 */
	"\n"                                                                /* 14 */
	"node gamma_2\n"                                                    /* 15 */
	"    address gamma.example.org\n"                                   /* 16 */
	"    port    7401\n"                                                /* 17 */
	"\n"                                                                /* 18 */
	"node delta\n"                                                      /* 19 */
	"    address [fd00::4]\n"                                           /* 20 */
	"    serve   on\n"                                                  /* 21 */
	"\n"                                                                /* 22 */
	"filesystem shared\n"                                               /* 23 */
	"    volume  iscsi://10.0.0.5:3260/iqn.2026-11.org.example:lun0/1\n" /* 24 */
	"    volume  iscsi://[fd00::5]/iqn.2026-11.org.example:lun1/0\n"     /* 25 */
	"    servers beta alpha delta\n"                                    /* 26 */
	"    dmapi   on\n"                                                  /* 27 */
	"    options noatime,nodev\n"                                       /* 28 */
	"\n"                                                                /* 29 */
	"filesystem scratch\n"                                              /* 30 */
	"    volume  /var/lib/cxfs/scratch.vol /var/lib/cxfs/scratch2.vol\n" /* 31 */
	"    servers alpha\n";                                              /* 32 */

static void check_valid(const struct cms_config *cfg)
{
	const struct cms_node *n;
	const struct cms_fs *fs;
	const uint8_t *key;
	size_t len;

	assert_string_equal(cms_config_cluster(cfg), "prod");
	key = cms_config_secret(cfg, &len);
	assert_int_equal(len, sizeof(fx.key));
	assert_memory_equal(key, fx.key, sizeof(fx.key));

	assert_int_equal(cms_config_node_count(cfg), 4);
	n = cms_config_node(cfg, "alpha");
	assert_ptr_equal(n, cms_config_node_at(cfg, 0));
	assert_string_equal(cms_node_name(n), "alpha");
	assert_string_equal(cms_node_address(n), "10.0.0.1");
	assert_int_equal(cms_node_addr_kind(n), CMS_ADDR_IPV4);
	assert_int_equal(cms_node_port(n), 7400);
	assert_true(cms_node_may_serve(n));
	assert_string_equal(cms_node_initiator(n), "iqn.2026-11.org.cxfs:prod.alpha");
	assert_int_equal(cms_node_index(n), 0);
	assert_int_equal(cms_node_line(n), 5);

	n = cms_config_node(cfg, "beta");
	assert_int_equal(cms_node_index(n), 1);
	assert_int_equal(cms_node_port(n), CMS_DEFAULT_PORT);
	assert_string_equal(cms_node_initiator(n), "iqn.2026-11.org.example:beta");

	n = cms_config_node(cfg, "gamma_2");
	assert_string_equal(cms_node_address(n), "gamma.example.org");
	assert_int_equal(cms_node_addr_kind(n), CMS_ADDR_HOST);
	assert_int_equal(cms_node_port(n), 7401);
	assert_false(cms_node_may_serve(n));
	assert_string_equal(cms_node_initiator(n), "iqn.2026-11.org.cxfs:prod.gamma-2");

	n = cms_config_node(cfg, "delta");
	assert_string_equal(cms_node_address(n), "fd00::4");
	assert_int_equal(cms_node_addr_kind(n), CMS_ADDR_IPV6);
	assert_true(cms_node_may_serve(n));
	assert_int_equal(cms_node_index(n), 3);
	assert_null(cms_config_node(cfg, "Alpha"));
	assert_null(cms_config_node_at(cfg, 4));

	assert_int_equal(cms_config_fs_count(cfg), 2);
	fs = cms_config_fs(cfg, "shared");
	assert_ptr_equal(fs, cms_config_fs_at(cfg, 0));
	assert_string_equal(cms_fs_name(fs), "shared");
	assert_int_equal(cms_fs_line(fs), 23);
	assert_int_equal(cms_fs_volume_count(fs), 2);
	assert_string_equal(cms_fs_volume(fs, 0), "iscsi://10.0.0.5:3260/iqn.2026-11.org.example:lun0/1");
	assert_string_equal(cms_fs_volume(fs, 1), "iscsi://[fd00::5]/iqn.2026-11.org.example:lun1/0");
	assert_null(cms_fs_volume(fs, 2));
	assert_int_equal(cms_fs_server_count(fs), 3);
	assert_ptr_equal(cms_fs_server(fs, 0), cms_config_node(cfg, "beta"));
	assert_ptr_equal(cms_fs_server(fs, 1), cms_config_node(cfg, "alpha"));
	assert_ptr_equal(cms_fs_server(fs, 2), cms_config_node(cfg, "delta"));
	assert_null(cms_fs_server(fs, 3));
	assert_true(cms_fs_dmapi(fs));
	assert_string_equal(cms_fs_options(fs), "noatime,nodev");

	fs = cms_config_fs(cfg, "scratch");
	assert_ptr_equal(fs, cms_config_fs_at(cfg, 1));
	assert_int_equal(cms_fs_volume_count(fs), 2);
	assert_string_equal(cms_fs_volume(fs, 1), "/var/lib/cxfs/scratch2.vol");
	assert_int_equal(cms_fs_server_count(fs), 1);
	assert_false(cms_fs_dmapi(fs));
	assert_null(cms_fs_options(fs));
	assert_null(cms_config_fs(cfg, "nope"));
	assert_null(cms_config_fs_at(cfg, 2));
}

static void test_valid_full(void **state)
{
	struct cms_config *cfg = NULL;
	const struct cms_node *self = NULL;
	char err[256];

	assert_int_equal(parse_text(valid_conf, &cfg, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_string_equal(cms_config_path(cfg), "cluster.conf");
	assert_string_equal(cms_config_secret_path(cfg), fx.secret);
	check_valid(cfg);
	assert_int_equal(cms_config_self(cfg, "delta", &self, err, sizeof(err)), 0);
	assert_ptr_equal(self, cms_config_node(cfg, "delta"));
	cms_config_free(cfg);
	cms_config_free(NULL);
}

/* The data cache bounds: their defaults, set, and out of range. */
static void test_cache_bounds(void **state)
{
	struct cms_config *cfg = NULL;
	char err[256], text[4096];

	(void)state;
	assert_int_equal(parse_text(valid_conf, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cms_config_write_behind_mb(cfg), CMS_WRITE_BEHIND_MB);
	assert_int_equal(cms_config_read_cache_mb(cfg), CMS_READ_CACHE_MB);
	cms_config_free(cfg);
	snprintf(text, sizeof(text), "write_behind_mb 0\nread_cache_mb 1024\n%s", valid_conf);
	assert_int_equal(parse_text(text, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cms_config_write_behind_mb(cfg), 0);
	assert_int_equal(cms_config_read_cache_mb(cfg), 1024);
	cms_config_free(cfg);
	snprintf(text, sizeof(text), "write_behind_mb 65537\n%s", valid_conf);
	assert_int_equal(parse_text(text, &cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "cluster.conf:1: bad write_behind_mb \"65537\": want MiB, 0 to 65536");
}

/* The metrics address: off by default, global, per node (which wins), "off", refused. */
static void test_metrics_addr(void **state)
{
	struct cms_config *cfg = NULL;
	char err[256], text[4096];
	const char *node_part = strstr(valid_conf, "node alpha\n");
	size_t head = (size_t)(node_part - valid_conf);

	(void)state;
	assert_int_equal(parse_text(valid_conf, &cfg, err, sizeof(err)), 0);
	assert_null(cms_config_metrics(cfg, cms_config_node_at(cfg, 0)));
	cms_config_free(cfg);
	/* Global 127.0.0.1:9420; alpha its own [::1]:9421; beta "off". */
	snprintf(text, sizeof(text), "metrics 127.0.0.1:9420\n%.*snode alpha\n    metrics [::1]:9421\n%s",
		 (int)head, valid_conf, node_part + strlen("node alpha\n"));
	{
		char *beta = strstr(text, "node beta\n") + strlen("node beta\n");

		memmove(beta + strlen("    metrics off\n"), beta, strlen(beta) + 1);
		memcpy(beta, "    metrics off\n", strlen("    metrics off\n"));
	}
	assert_int_equal(parse_text(text, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cms_config_metrics(cfg, cms_config_node_at(cfg, 0)), "[::1]:9421");
	assert_null(cms_config_metrics(cfg, cms_config_node_at(cfg, 1)));
	assert_string_equal(cms_config_metrics(cfg, cms_config_node_at(cfg, 2)), "127.0.0.1:9420");
	cms_config_free(cfg);
	snprintf(text, sizeof(text), "metrics localhost:9420\n%s", valid_conf);
	assert_int_equal(parse_text(text, &cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "cluster.conf:1: bad metrics \"localhost:9420\": want ADDR:PORT "
			    "(numeric, e.g. 127.0.0.1:9420 or [::1]:9420) or off");
	snprintf(text, sizeof(text), "metrics 127.0.0.1:0\n%s", valid_conf);
	assert_int_equal(parse_text(text, &cfg, err, sizeof(err)), -EINVAL);
}

/* A file on disk whose secret is named relative to the file's directory. */
static void test_load_file(void **state)
{
	struct cms_config *cfg = NULL;
	char *text = with_secret(valid_conf, "cluster.key");
	char path[128], err[256];

	make_file(path, sizeof(path), "cluster.conf", text, strlen(text), 0644);
	free(text);
	assert_int_equal(cms_config_load(path, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cms_config_path(cfg), path);
	assert_string_equal(cms_config_secret_path(cfg), fx.secret);
	check_valid(cfg);
	cms_config_free(cfg);

	snprintf(path, sizeof(path), "%s/missing.conf", fx.dir);
	cfg = (struct cms_config *)&fx;
	assert_int_equal(cms_config_load(path, &cfg, err, sizeof(err)), -ENOENT);
	assert_ptr_equal(cfg, (struct cms_config *)&fx);
	assert_non_null(strstr(err, "missing.conf: No such file or directory"));
	assert_int_equal(cms_config_load(fx.dir, &cfg, err, sizeof(err)), -EISDIR);
}

/* The source tree: $CXFS_SOURCE_DIR (set by ctest), else found from this file's path. */
static void source_dir(char *out, size_t outlen)
{
	const char *env = getenv("CXFS_SOURCE_DIR");
	const char *marker = strstr(__FILE__, "/test/unit/");

	if (env)
		snprintf(out, outlen, "%s", env);
	else if (marker)
		snprintf(out, outlen, "%.*s", (int)(marker - __FILE__), __FILE__);
	else
		snprintf(out, outlen, ".");
}

/* The indented block under "## Example" in docs/cluster.conf.md parses as documented. */
static void test_doc_example(void **state)
{
	struct cms_config *cfg = NULL;
	char src[512], path[640], line[512], err[256];
	const struct cms_fs *fs;
	FILE *in, *out;
	bool in_example = false;

	source_dir(src, sizeof(src));
	snprintf(path, sizeof(path), "%s/docs/cluster.conf.md", src);
	in = fopen(path, "r");
	assert_non_null(in);
	snprintf(path, sizeof(path), "%s/doc.conf", fx.dir);
	out = fopen(path, "w");
	assert_non_null(out);
	while (fgets(line, sizeof(line), in)) {
		if (strncmp(line, "## ", 3) == 0)
			in_example = strcmp(line, "## Example\n") == 0;
		else if (in_example && strncmp(line, "    ", 4) == 0)
			fputs(line + 4, out);
		else if (in_example && line[0] == '\n')
			fputs(line, out);
	}
	assert_int_equal(fclose(in), 0);
	assert_int_equal(fclose(out), 0);

	/* "secret cluster.key" names the fixture's secret, beside doc.conf. */
	assert_int_equal(cms_config_load(path, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cms_config_secret_path(cfg), fx.secret);
	assert_int_equal(cms_config_node_count(cfg), 4);
	assert_int_equal(cms_node_port(cms_config_node(cfg, "alpha")), 7400);
	assert_string_equal(cms_node_initiator(cms_config_node(cfg, "alpha")), "iqn.2026-11.org.cxfs:prod.alpha");
	assert_false(cms_node_may_serve(cms_config_node(cfg, "gamma")));
	fs = cms_config_fs(cfg, "shared");
	assert_int_equal(cms_fs_volume_count(fs), 2);
	assert_string_equal(cms_node_name(cms_fs_server(fs, 0)), "beta");
	assert_true(cms_fs_dmapi(fs));
	assert_int_equal(cms_config_fs_count(cfg), 2);
	cms_config_free(cfg);
}

/* 3. Comments, blank lines and whitespace. */

static void test_whitespace_variants(void **state)
{
	static const char text[] =
		"   # indented comment\r\n"
		"\t\r\n"
		"cluster\tprod # trailing comment\r\n"
		"secret %SECRET%\r\n"
		"#node ghost\n"
		"node a\n"
		"address\t\t::1   \n"
		"  serve yes#no\n"
		"\t\tport 1\n"
		"node b\n"
		"address 0:0::1\n"
		"filesystem f\n"
		"volume /v#1\n"
		"servers a\n"
		"dmapi off";
	struct cms_config *cfg = NULL;
	const struct cms_node *n;
	char err[256];

	char *fixed = strdup(text), *at = strstr(fixed, "yes#no");

	/* "yes#no" is one word: '#' starts a comment only at a word's start. */
	assert_int_equal(parse_text(text, &cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "cluster.conf:8: \"serve\" takes yes or no (on or off), not \"yes#no\"");
	at[3] = ' ';
	at[4] = '#';
	assert_int_equal(parse_text(fixed, &cfg, err, sizeof(err)), 0);
	free(fixed);
	n = cms_config_node(cfg, "a");
	assert_string_equal(cms_node_address(n), "::1");
	assert_int_equal(cms_node_addr_kind(n), CMS_ADDR_IPV6);
	assert_int_equal(cms_node_port(n), 1);
	assert_true(cms_node_may_serve(n));
	assert_int_equal(cms_node_line(n), 6);
	assert_int_equal(cms_node_port(cms_config_node(cfg, "b")), CMS_DEFAULT_PORT);
	assert_null(cms_config_node(cfg, "ghost"));
	assert_string_equal(cms_fs_volume(cms_config_fs(cfg, "f"), 0), "/v#1");
	assert_false(cms_fs_dmapi(cms_config_fs(cfg, "f")));
	cms_config_free(cfg);
}

/* IPv6 in every place it may appear, and IPv6 spellings that name one address. */
static void test_ipv6(void **state)
{
	static const char text[] =
		"cluster c\nsecret %SECRET%\n"
		"node a\naddress 2001:db8::1\nserve yes\n"
		"node b\naddress [2001:db8::2]\nport 7400\n"
		"node c\naddress ::ffff:10.0.0.1\n"
		"filesystem f\nvolume iscsi://[2001:db8::9]:3261/iqn.2001-04.com.example:t/7\nservers a\n";
	static const char clash[] =
		"cluster c\nsecret %SECRET%\n"
		"node a\naddress 2001:db8::1\n"
		"node b\naddress [2001:DB8:0:0::1]\n";
	struct cms_config *cfg = NULL;
	char err[256];

	assert_int_equal(parse_text(text, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cms_node_address(cms_config_node(cfg, "b")), "2001:db8::2");
	assert_int_equal(cms_node_addr_kind(cms_config_node(cfg, "c")), CMS_ADDR_IPV6);
	cms_config_free(cfg);

	assert_int_equal(parse_text(clash, &cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "cluster.conf:6: node \"b\" uses port 7400 on 2001:DB8:0:0::1, "
			    "as node \"a\" (line 3) does");
}

/* 4. Refusals. */

#define HDR "cluster prod\nsecret %SECRET%\n"                 /* lines 1-2 */
#define NODE_A "node a\naddress 10.0.0.1\nserve yes\n"        /* 3 lines */

struct bad_case {
	const char *text;                /* the configuration, "%SECRET%" for the good secret */
	int rc;                          /* the expected result */
	const char *msg;                 /* the exact message */
};

static const struct bad_case bad_cases[] = {
	/* syntax */
	{ HDR "node\n", -EINVAL, "cluster.conf:3: \"node\" takes one value, not 0" },
	{ HDR "node a b\n", -EINVAL, "cluster.conf:3: \"node\" takes one value, not 2" },
	{ HDR NODE_A "filesystem f\nservers\n", -EINVAL,
	  "cluster.conf:7: \"servers\" needs at least one value" },
	{ HDR "node a\naddress 10.0.0.1 10.0.0.2\n", -EINVAL,
	  "cluster.conf:4: \"address\" takes one value, not 2" },
	{ HDR "node a\naddr\001ess 10.0.0.1\n", -EINVAL,
	  "cluster.conf:4: control character 0x01 in the line" },
	{ HDR "node a\naddress 10.0.0.1\nserve maybe\n", -EINVAL,
	  "cluster.conf:5: \"serve\" takes yes or no (on or off), not \"maybe\"" },
	{ HDR NODE_A "filesystem f\nvolume /v\nservers a\ndmapi 1\n", -EINVAL,
	  "cluster.conf:9: \"dmapi\" takes yes or no (on or off), not \"1\"" },
	{ HDR "node bad!name\n", -EINVAL,
	  "cluster.conf:3: bad node name \"bad!name\": use at most 63 letters, digits, '.', '_' and '-', "
	  "starting with a letter or digit" },
	{ "cluster -prod\n", -EINVAL,
	  "cluster.conf:1: bad cluster name \"-prod\": use at most 63 letters, digits, '.', '_' and '-', "
	  "starting with a letter or digit" },
	{ HDR NODE_A "filesystem f\nvolume /v\nservers a\noptions rw,,noatime\n", -EINVAL,
	  "cluster.conf:9: bad mount options \"rw,,noatime\": want OPTION[,OPTION...] with no empty option" },
	/* unknown keywords and keywords out of place */
	{ HDR "node a\n  adress 10.0.0.1\n", -EINVAL, "cluster.conf:4: unknown keyword \"adress\"" },
	{ "Cluster prod\n", -EINVAL, "cluster.conf:1: unknown keyword \"Cluster\"" },
	{ HDR NODE_A "secret /x\n", -EINVAL,
	  "cluster.conf:6: \"secret\" belongs before the first node or filesystem section" },
	{ HDR "address 10.0.0.1\n", -EINVAL, "cluster.conf:3: \"address\" outside a node section" },
	{ HDR "volume /v\n", -EINVAL, "cluster.conf:3: \"volume\" outside a filesystem section" },
	{ HDR NODE_A "filesystem f\nport 7400\n", -EINVAL,
	  "cluster.conf:7: \"port\" is not a filesystem setting (filesystem \"f\" begins at line 6)" },
	{ HDR NODE_A "dmapi on\n", -EINVAL,
	  "cluster.conf:6: \"dmapi\" is not a node setting (node \"a\" begins at line 3)" },
	{ HDR NODE_A "port 1\nport 2\n", -EINVAL, "cluster.conf:7: \"port\" given twice (first at line 6)" },
	{ "cluster a\ncluster b\n", -EINVAL, "cluster.conf:2: \"cluster\" given twice (first at line 1)" },
	/* duplicates */
	{ HDR NODE_A "node b\naddress 10.0.0.2\nnode a\n", -EINVAL,
	  "cluster.conf:8: node \"a\" listed twice (first at line 3)" },
	{ HDR NODE_A "filesystem f\nvolume /v\nservers a\nfilesystem f\n", -EINVAL,
	  "cluster.conf:9: filesystem \"f\" listed twice (first at line 6)" },
	{ HDR NODE_A "node b\naddress 10.0.0.1\n", -EINVAL,
	  "cluster.conf:7: node \"b\" uses port 7400 on 10.0.0.1, as node \"a\" (line 3) does" },
	{ HDR "node a\naddress host1\nport 7000\nnode b\nport 7000\naddress HOST1\n", -EINVAL,
	  "cluster.conf:7: node \"b\" uses port 7000 on HOST1, as node \"a\" (line 3) does" },
	{ HDR NODE_A "node b\ninitiator iqn.2026-11.org.cxfs:prod.a\naddress 10.0.0.2\n", -EINVAL,
	  "cluster.conf:7: node \"b\" has the iSCSI initiator name iqn.2026-11.org.cxfs:prod.a of node "
	  "\"a\" (line 3); give one of them its own \"initiator\"" },
	{ HDR NODE_A "filesystem f\nvolume /v\nservers a\nfilesystem g\nvolume /w /v\n", -EINVAL,
	  "cluster.conf:10: volume \"/v\" listed twice (first at line 7, filesystem \"f\")" },
	{ HDR NODE_A "filesystem f\nvolume /v\nservers a a\n", -EINVAL,
	  "cluster.conf:8: node \"a\" listed twice in the server order" },
	/* server orders */
	{ HDR NODE_A "filesystem f\nvolume /v\nservers a zeta\n", -EINVAL,
	  "cluster.conf:8: server order of filesystem \"f\" names node \"zeta\", which is not in the "
	  "configuration" },
	{ HDR NODE_A "node b\naddress 10.0.0.2\nserve no\nfilesystem f\nvolume /v\nservers a b\n", -EINVAL,
	  "cluster.conf:11: server order of filesystem \"f\" names node \"b\", which may not serve "
	  "(its section, line 6, lacks \"serve yes\")" },
	{ HDR "filesystem f\nvolume /v\nservers b\n" NODE_A "node b\naddress 10.0.0.2\n", -EINVAL,
	  "cluster.conf:5: server order of filesystem \"f\" names node \"b\", which may not serve "
	  "(its section, line 9, lacks \"serve yes\")" },
	{ HDR NODE_A "filesystem f\nservers a\n", -EINVAL,
	  "cluster.conf:6: filesystem \"f\" has no volume" },
	{ HDR NODE_A "filesystem f\nvolume /v\n\n", -EINVAL,
	  "cluster.conf:6: filesystem \"f\" has no server order (\"servers NODE...\")" },
	/* missing pieces */
	{ HDR "node a\nserve yes\n", -EINVAL, "cluster.conf:3: node \"a\" has no address" },
	{ HDR, -EINVAL, "cluster.conf:2: no node sections (want at least one \"node NAME\")" },
	{ "", -EINVAL, "cluster.conf:1: no \"cluster NAME\" line before the first section" },
	{ "secret /x\n" NODE_A, -EINVAL, "cluster.conf:4: no \"cluster NAME\" line before the first section" },
	{ "cluster prod\n" NODE_A, -EINVAL, "cluster.conf:4: no \"secret FILE\" line before the first section" },
	/* ports */
	{ HDR "node a\nport 0\n", -EINVAL, "cluster.conf:4: bad port \"0\": want a number from 1 to 65535" },
	{ HDR "node a\nport 65536\n", -EINVAL,
	  "cluster.conf:4: bad port \"65536\": want a number from 1 to 65535" },
	{ HDR "node a\nport 74o0\n", -EINVAL, "cluster.conf:4: bad port \"74o0\": want a number from 1 to 65535" },
	{ HDR "node a\nport -1\n", -EINVAL, "cluster.conf:4: bad port \"-1\": want a number from 1 to 65535" },
	{ HDR "node a\nport 0007400\n", -EINVAL,
	  "cluster.conf:4: bad port \"0007400\": want a number from 1 to 65535" },
	/* addresses */
	{ HDR "node a\naddress 10.0.0.256\n", -EINVAL,
	  "cluster.conf:4: bad address \"10.0.0.256\": want an IPv4 or IPv6 literal or a host name" },
	{ HDR "node a\naddress fd00::1::2\n", -EINVAL,
	  "cluster.conf:4: bad address \"fd00::1::2\": want an IPv4 or IPv6 literal or a host name" },
	{ HDR "node a\naddress [host]\n", -EINVAL,
	  "cluster.conf:4: bad address \"[host]\": want an IPv4 or IPv6 literal or a host name" },
	{ HDR "node a\naddress -host.example\n", -EINVAL,
	  "cluster.conf:4: bad address \"-host.example\": want an IPv4 or IPv6 literal or a host name" },
	{ HDR "node a\naddress host..example\n", -EINVAL,
	  "cluster.conf:4: bad address \"host..example\": want an IPv4 or IPv6 literal or a host name" },
	{ HDR "node a\ninitiator iqn.2026-11.org.x/y\n", -EINVAL,
	  "cluster.conf:4: bad initiator name \"iqn.2026-11.org.x/y\": an iSCSI name holds only letters, "
	  "digits, '.', ':' and '-'" },
	{ HDR "node a\ninitiator alpha\n", -EINVAL,
	  "cluster.conf:4: bad initiator name \"alpha\": an iSCSI name starts with iqn., eui. or naa." },
	/* volumes */
	{ HDR NODE_A "filesystem f\nvolume iscsi://h/iqn.2026-11.org.x:t\n", -EINVAL,
	  "cluster.conf:7: bad volume URI \"iscsi://h/iqn.2026-11.org.x:t\": no LUN after the target IQN "
	  "(want iscsi://HOST[:PORT]/IQN/LUN)" },
	{ HDR NODE_A "filesystem f\nvolume iscsi://h:0/iqn.2026-11.org.x:t/1\n", -EINVAL,
	  "cluster.conf:7: bad volume URI \"iscsi://h:0/iqn.2026-11.org.x:t/1\": bad port (1-65535) "
	  "(want iscsi://HOST[:PORT]/IQN/LUN)" },
	{ HDR NODE_A "filesystem f\nvolume iscsi://h:/iqn.2026-11.org.x:t/1\n", -EINVAL,
	  "cluster.conf:7: bad volume URI \"iscsi://h:/iqn.2026-11.org.x:t/1\": bad port (1-65535) "
	  "(want iscsi://HOST[:PORT]/IQN/LUN)" },
	{ HDR NODE_A "filesystem f\nvolume iscsi:///iqn.2026-11.org.x:t/1\n", -EINVAL,
	  "cluster.conf:7: bad volume URI \"iscsi:///iqn.2026-11.org.x:t/1\": bad host "
	  "(want iscsi://HOST[:PORT]/IQN/LUN)" },
	{ HDR NODE_A "filesystem f\nvolume iscsi://[::1/iqn.2026-11.org.x:t/1\n", -EINVAL,
	  "cluster.conf:7: bad volume URI \"iscsi://[::1/iqn.2026-11.org.x:t/1\": an IPv6 host needs its "
	  "closing ']' (want iscsi://HOST[:PORT]/IQN/LUN)" },
	{ HDR NODE_A "filesystem f\nvolume iscsi://h/target0/1\n", -EINVAL,
	  "cluster.conf:7: bad volume URI \"iscsi://h/target0/1\": bad target IQN "
	  "(want iscsi://HOST[:PORT]/IQN/LUN)" },
	{ HDR NODE_A "filesystem f\nvolume iscsi://h/iqn.2026-11.org.x:t/16384\n", -EINVAL,
	  "cluster.conf:7: bad volume URI \"iscsi://h/iqn.2026-11.org.x:t/16384\": bad LUN (0-16383) "
	  "(want iscsi://HOST[:PORT]/IQN/LUN)" },
	{ HDR NODE_A "filesystem f\nvolume iscsi://h/iqn.2026-11.org.x:t/a/1\n", -EINVAL,
	  "cluster.conf:7: bad volume URI \"iscsi://h/iqn.2026-11.org.x:t/a/1\": too many '/' "
	  "(want iscsi://HOST[:PORT]/IQN/LUN)" },
	{ HDR NODE_A "filesystem f\nvolume iscsi:h\n", -EINVAL,
	  "cluster.conf:7: bad volume \"iscsi:h\": want an absolute file path or iscsi://HOST[:PORT]/IQN/LUN" },
	{ HDR NODE_A "filesystem f\nvolume vol/file\n", -EINVAL,
	  "cluster.conf:7: bad volume \"vol/file\": want an absolute file path or "
	  "iscsi://HOST[:PORT]/IQN/LUN" },
	{ HDR NODE_A "filesystem f\nvolume /a://b\n", -EINVAL,
	  "cluster.conf:7: bad volume \"/a://b\": want an absolute file path or iscsi://HOST[:PORT]/IQN/LUN" },
	/* the secret file */
	{ "cluster prod\n\nsecret /nonexistent/cxfs.key\n" NODE_A, -ENOENT,
	  "cluster.conf:3: secret file /nonexistent/cxfs.key: No such file or directory" },
	{ "cluster prod\nsecret /\n" NODE_A, -EINVAL, "cluster.conf:2: secret file / is not a regular file" },
};

static void test_refusals(void **state)
{
	struct cms_config *cfg;
	char err[512];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		cfg = (struct cms_config *)&fx;
		rc = parse_text(bad_cases[i].text, &cfg, err, sizeof(err));
		if (rc != bad_cases[i].rc || strcmp(err, bad_cases[i].msg) != 0)
			fail_msg("case %zu: got %d \"%s\", want %d \"%s\"", i, rc, err, bad_cases[i].rc,
				 bad_cases[i].msg);
		assert_ptr_equal(cfg, (struct cms_config *)&fx);
	}
}

/* Line-length limit, and a message buffer too small for the message. */
static void test_long_line_and_small_buffer(void **state)
{
	struct cms_config *cfg = NULL;
	char *text = malloc(8192);
	char err[8];

	assert_non_null(text);
	memset(text, 'x', 8192);
	memcpy(text, "cluster prod\n# ", 15);
	assert_int_equal(cms_config_parse("cluster.conf", text, 8192, &cfg, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "cluster");
	free(text);
	assert_int_equal(cms_config_parse("cluster.conf", "node", 4, &cfg, NULL, 0), -EINVAL);
	assert_null(cfg);
}

static void test_self(void **state)
{
	struct cms_config *cfg = NULL;
	const struct cms_node *self = NULL;
	char err[256], tiny[12];

	assert_int_equal(parse_text(valid_conf, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cms_config_self(cfg, "zeta", &self, err, sizeof(err)), -ENOENT);
	assert_null(self);
	assert_string_equal(err, "cluster.conf: no node named \"zeta\"; the nodes are alpha (line 5), "
			    "beta (line 10), gamma_2 (line 15), delta (line 19)");
	assert_int_equal(cms_config_self(cfg, NULL, &self, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cluster.conf: no node name given; the nodes are alpha (line 5)"));
	assert_int_equal(cms_config_self(cfg, "zeta", &self, tiny, sizeof(tiny)), -ENOENT);
	assert_string_equal(tiny, "cluster.con");
	assert_int_equal(cms_config_self(cfg, "gamma_2", &self, err, sizeof(err)), 0);
	assert_string_equal(cms_node_name(self), "gamma_2");
	cms_config_free(cfg);
}

/* 5. The secret file. */

static void expect_secret(const char *path, int rc, const char *msg)
{
	static const char text[] = "cluster prod\nsecret %SECRET%\n" NODE_A;
	struct cms_config *cfg = NULL;
	char *full = with_secret(text, path);
	char err[512];

	assert_int_equal(cms_config_parse("cluster.conf", full, strlen(full), &cfg, err, sizeof(err)), rc);
	free(full);
	if (rc == 0) {
		cms_config_free(cfg);
		return;
	}
	assert_null(cfg);
	if (!strstr(err, msg))
		fail_msg("got \"%s\", want \"%s\" in it", err, msg);
}

static void test_secret_file(void **state)
{
	uint8_t bytes[CMS_SECRET_MAX + 1];
	char path[128], msg[512];

	memset(bytes, 0xa5, sizeof(bytes));
	expect_secret(fx.secret, 0, NULL);

	make_file(path, sizeof(path), "open.key", bytes, 64, 0644);
	snprintf(msg, sizeof(msg), "cluster.conf:2: secret file %s is open to group or others (mode 0644); "
		 "run: chmod 600 %s", path, path);
	expect_secret(path, -EPERM, msg);
	make_file(path, sizeof(path), "group.key", bytes, 64, 0640);
	expect_secret(path, -EPERM, "(mode 0640)");
	make_file(path, sizeof(path), "owner-only-read.key", bytes, 64, 0400);
	expect_secret(path, 0, NULL);

	make_file(path, sizeof(path), "empty.key", bytes, 0, 0600);
	snprintf(msg, sizeof(msg), "cluster.conf:2: secret file %s is empty; make one with: "
		 "head -c 64 /dev/urandom > %s", path, path);
	expect_secret(path, -EINVAL, msg);

	make_file(path, sizeof(path), "short.key", bytes, CMS_SECRET_MIN - 1, 0600);
	snprintf(msg, sizeof(msg), "cluster.conf:2: secret file %s holds 31 bytes, fewer than 32;", path);
	expect_secret(path, -EINVAL, msg);
	make_file(path, sizeof(path), "min.key", bytes, CMS_SECRET_MIN, 0600);
	expect_secret(path, 0, NULL);
	make_file(path, sizeof(path), "max.key", bytes, CMS_SECRET_MAX, 0600);
	expect_secret(path, 0, NULL);
	make_file(path, sizeof(path), "huge.key", bytes, CMS_SECRET_MAX + 1, 0600);
	expect_secret(path, -EINVAL, "is larger than 4096 bytes");

	snprintf(path, sizeof(path), "%s/absent.key", fx.dir);
	snprintf(msg, sizeof(msg), "cluster.conf:2: secret file %s: No such file or directory", path);
	expect_secret(path, -ENOENT, msg);
}

/* 6. The name service's choice. */

static void test_server_choice(void **state)
{
	struct cms_config *cfg = NULL;
	const struct cms_fs *shared, *scratch;
	const struct cms_node *alpha, *beta, *delta;
	/* Indexes: alpha 0, beta 1, gamma_2 2, delta 3; shared's order is beta alpha delta. */
	static const struct {
		bool up[4];
		int shared_pick;             /* index of the expected node, -1 for none */
		int scratch_pick;
	} cases[] = {
		{ { true, true, true, true }, 1, 0 },
		{ { true, false, true, true }, 0, 0 },
		{ { false, false, true, true }, 3, -1 },
		{ { false, true, false, false }, 1, -1 },
		{ { false, false, true, false }, -1, -1 },
		{ { false, false, false, false }, -1, -1 },
		{ { true, false, false, false }, 0, 0 },
	};
	char err[256];
	size_t i;

	assert_int_equal(parse_text(valid_conf, &cfg, err, sizeof(err)), 0);
	shared = cms_config_fs(cfg, "shared");
	scratch = cms_config_fs(cfg, "scratch");
	alpha = cms_config_node(cfg, "alpha");
	beta = cms_config_node(cfg, "beta");
	delta = cms_config_node(cfg, "delta");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct cms_node *want_shared = cases[i].shared_pick < 0 ? NULL :
			cms_config_node_at(cfg, (size_t)cases[i].shared_pick);
		const struct cms_node *want_scratch = cases[i].scratch_pick < 0 ? NULL :
			cms_config_node_at(cfg, (size_t)cases[i].scratch_pick);

		assert_ptr_equal(cms_fs_server_for(shared, cases[i].up, 4), want_shared);
		assert_ptr_equal(cms_fs_server_for(scratch, cases[i].up, 4), want_scratch);
	}
	/* Nodes at or past @nup count as down. */
	{
		static const bool all[4] = { true, true, true, true };

		assert_ptr_equal(cms_fs_server_for(shared, all, 1), alpha);
		assert_ptr_equal(cms_fs_server_for(shared, all, 2), beta);
		assert_null(cms_fs_server_for(shared, NULL, 0));
		assert_ptr_equal(cms_fs_server_for(shared, (const bool[4]){ false, false, false, true }, 4),
				 delta);
	}
	cms_config_free(cfg);
}

/* 7. Robustness. */

/* A failure must be "cluster.conf:LINE: something" with LINE within the text (or one past it). */
static void check_outcome(int rc, struct cms_config *cfg, const char *err, const char *text, size_t len)
{
	unsigned long line, lines = 1;
	const char *prefix = "cluster.conf:";
	char *end;
	size_t i;

	if (rc == 0) {
		assert_non_null(cfg);
		cms_config_free(cfg);
		return;
	}
	assert_true(rc < 0);
	for (i = 0; i < len; i++)
		lines += text[i] == '\n';
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("message without the file: \"%s\"", err);
	line = strtoul(err + strlen(prefix), &end, 10);
	if (end == err + strlen(prefix) || strncmp(end, ": ", 2) != 0 || end[2] == '\0' ||
	    line < 1 || line > lines)
		fail_msg("message without a line within 1..%lu: \"%s\"", lines, err);
}

static void test_fuzz(void **state)
{
	char *base = with_secret(valid_conf, fx.secret);
	size_t len = strlen(base), cut, i;
	struct cms_config *cfg;
	char *buf = malloc(len);
	char err[512];
	unsigned seed = 20261107;
	int iter, flips, rc;

	assert_non_null(buf);
	for (cut = 0; cut <= len; cut++) {
		memcpy(buf, base, cut);
		cfg = NULL;
		rc = cms_config_parse("cluster.conf", buf, cut, &cfg, err, sizeof(err));
		check_outcome(rc, cfg, err, buf, cut);
	}
	srand(seed);
	for (iter = 0; iter < 20000; iter++) {
		memcpy(buf, base, len);
		flips = 1 + rand() % 4;
		while (flips-- > 0) {
			i = (size_t)rand() % len;
			switch (rand() % 4) {
			case 0: buf[i] = (char)(rand() % 256); break;          /* any byte */
			case 1: buf[i] = "\n #:/[]0.\t\r\0a-"[rand() % 15]; break; /* a delimiter */
			case 2: buf[i] ^= (char)(1 << (rand() % 8)); break;    /* one bit */
			default: buf[i] = ' '; break;                       /* split a word */
			}
		}
		cut = iter % 3 == 0 ? (size_t)rand() % (len + 1) : len;
		cfg = NULL;
		rc = cms_config_parse("cluster.conf", buf, cut, &cfg, err, sizeof(err));
		check_outcome(rc, cfg, err, buf, cut);
	}
	free(buf);
	free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_full),
		cmocka_unit_test(test_cache_bounds),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_doc_example),
		cmocka_unit_test(test_whitespace_variants),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_long_line_and_small_buffer),
		cmocka_unit_test(test_self),
		cmocka_unit_test(test_metrics_addr),
		cmocka_unit_test(test_secret_file),
		cmocka_unit_test(test_server_choice),
		cmocka_unit_test(test_fuzz),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
