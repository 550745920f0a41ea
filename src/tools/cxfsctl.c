/*
 * cxfsctl.c - cxfsctl: talk to the local cxfsd through its admin socket.
 * Each request is one line on a connection of its own; the daemon answers
 * with text or one JSON object and closes the connection (see
 * src/daemon/admin.c).
 *
 * Sections:
 *   - talking to the daemon (ask)
 *   - a small JSON reader: the daemon's objects are parsed into a flat
 *     array of values, which the reports pick from by key path
 *   - token waits: the "waits" object of "status json" and "tokens INO"
 *   - status: the daemon's text in single-machine mode, a report built
 *     from "status json" in cluster mode
 *   - tokens: "tokens INO" for each PATH
 *   - volume: "volume [json]", and a revive followed by "volume progress"
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/admin.h"

#define CTL_REPLY_MAX (8u << 20)   /* longest answer read from the daemon */
#define JS_DEPTH_MAX 32            /* deepest nesting the JSON reader accepts */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cxfsctl [--socket PATH] status [--json]\n"
		"       cxfsctl [--socket PATH] tokens [--json] PATH...\n"
		"       cxfsctl [--socket PATH] tokens [--json] --inode INO...\n"
		"       cxfsctl [--socket PATH] relocate FS NODE\n"
		"       cxfsctl [--socket PATH] leave\n"
		"       cxfsctl [--socket PATH] metrics\n"
		"       cxfsctl [--socket PATH] backup FILE\n"
		"       cxfsctl [--socket PATH] volume [--json]\n"
		"       cxfsctl [--socket PATH] volume revive [--max-rate MB/s]\n"
		"       cxfsctl [--socket PATH] volume stop\n"
		"       cxfsctl [--socket PATH] volume attach MIRROR LUN\n"
		"       cxfsctl [--socket PATH] volume detach MIRROR LEG\n"
		"       cxfsctl [--socket PATH] volume grow LUN\n"
		"\n"
		"Ask the local cxfs daemon for its state.\n"
		"\n"
		"  status   the filesystem, who serves it, space, cached vnodes, metadata\n"
		"           commits, data and device I/O counters; in cluster mode the\n"
		"           nodes, tokens, messages and cache counters, and the token\n"
		"           waits in progress with what each waits for\n"
		"  tokens   (cluster mode) for each PATH on the cxfs mount: the tokens this\n"
		"           node caches and, on the metadata server, what each node holds;\n"
		"           the token waits on it\n"
		"  relocate (cluster mode) move the metadata server of filesystem FS to\n"
		"           NODE (a node of its server order that is up); applications on\n"
		"           every node only pause.  Works from any node\n"
		"  leave    (cluster mode) an orderly stop of this node: it withdraws from\n"
		"           the membership (nobody fences or recovers it), unmounts and\n"
		"           exits, as on SIGTERM\n"
		"  metrics  the node's Prometheus metrics, as its HTTP endpoint serves them\n"
		"           (for node_exporter's textfile collector; docs/metrics.md)\n"
		"  backup   write a consistent copy of the metadata store to FILE (on the\n"
		"           metadata server's host: run it on that node); check it with\n"
		"           cxfs-check --store FILE\n"
		"  volume   the mounted volume: its LUNs, layout, mirror legs and their\n"
		"           states (cxfs-volume show); `volume revive` (single machine,\n"
		"           or a cluster's metadata server) copies the mirror legs that\n"
		"           are out while every node serves I/O, showing progress until\n"
		"           it ends (no faster than --max-rate MB/s, when given, to leave\n"
		"           the LUNs to the applications); `volume stop` stops it after\n"
		"           its current chunk; `volume attach` adds LUN as a reviving leg\n"
		"           of mirror MIRROR (a node number of `volume`), `volume detach`\n"
		"           takes leg LEG away (its LUNs leave the volume), `volume grow`\n"
		"           appends LUN to the top-level concat, on every node while they\n"
		"           serve I/O (same nodes as revive)\n"
		"\n"
		"  -s, --socket PATH   the daemon's admin socket (default " CXFSD_ADMIN_SOCKET ")\n"
		"  -j, --json          the daemon's JSON objects (one a line) instead of text\n"
		"  -r, --max-rate MB/s volume revive: copy at most this many MB a second\n"
		"  -i, --inode         tokens: the arguments are inode numbers (no stat(), which\n"
		"                      would wait on an inode whose tokens are stuck)\n"
		"  -h, --help          this text\n"
		"Exit status: 0 answered; 1 no daemon, an error, or a PATH that failed; 2 usage.\n");
}

/* ---- talking to the daemon ------------------------------------------------ */

/*
 * Send the request line @req to the daemon at @sock and read its whole
 * answer into *@reply, NUL-terminated (caller must free).  0, or 1 with the
 * reason printed.
 */
static int ask(const char *sock, const char *req, char **reply)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = 0, cap = 4096;
	char *buf = NULL, *nb, line[320];
	ssize_t n;
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "cxfsctl: no cxfsd answers at %s: %s\n", sock, strerror(errno));
		goto out_close;
	}
	snprintf(line, sizeof(line), "%s\n", req);
	/* One send, without SIGPIPE: a daemon may close as soon as it has answered. */
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t)strlen(line)) {
		fprintf(stderr, "cxfsctl: cannot send to %s: %s\n", sock, strerror(errno));
		goto out_close;
	}
	buf = malloc(cap);
	while (buf) {
		if (cap - len < 2) {
			if (cap >= CTL_REPLY_MAX) {
				fprintf(stderr, "cxfsctl: the answer from %s is longer than %u bytes\n",
					sock, CTL_REPLY_MAX);
				goto out_free;
			}
			nb = realloc(buf, cap * 2);
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "cxfsctl: cannot read from %s: %s\n", sock, strerror(errno));
			goto out_free;
		}
		if (n == 0) {
			buf[len] = '\0';
			close(fd);
			*reply = buf;
			return 0;
		}
		len += (size_t)n;
	}
	fprintf(stderr, "cxfsctl: out of memory\n");
out_free:
	free(buf);
out_close:
	if (fd >= 0)
		close(fd);
	return 1;
}

/* ---- a small JSON reader -------------------------------------------------- */

enum js_type { JS_OBJECT, JS_ARRAY, JS_STRING, JS_NUMBER, JS_TRUE, JS_FALSE, JS_NULL };

/* One value of the document; v[0] is the whole document. */
struct js_val {
	enum js_type type;
	size_t start;        /* offset in js.s: a string's decoded, NUL-terminated text; a number's text */
	int next;            /* index of the first value after this one and all it contains */
};

/*
 * A parsed document.  Values are stored in document order: an object's
 * members follow it as key (a string), value pairs; an array's elements
 * follow it.  Strings are decoded in place in the private copy @s.
 */
struct js {
	char *s;             /* copy of the text; owned */
	size_t len;
	struct js_val *v;    /* owned */
	int n, cap;
	char err[128];       /* the first error: what is malformed, or which key is missing */
};

static void js_fail(struct js *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void js_fail(struct js *j, const char *fmt, ...)
{
	va_list ap;

	if (j->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(j->err, sizeof(j->err), fmt, ap);
	va_end(ap);
}

static void js_ws(const struct js *j, size_t *p)
{
	while (*p < j->len && strchr(" \t\r\n", j->s[*p]))
		(*p)++;
}

/* Append a value of @type starting at @start; its index or -1. */
static int js_add(struct js *j, enum js_type type, size_t start)
{
	struct js_val *nv;

	if (j->n == j->cap) {
		nv = realloc(j->v, (size_t)(j->cap ? j->cap * 2 : 64) * sizeof(*nv));
		if (!nv) {
			js_fail(j, "out of memory");
			return -1;
		}
		j->v = nv;
		j->cap = j->cap ? j->cap * 2 : 64;
	}
	j->v[j->n] = (struct js_val){ type, start, j->n + 1 };
	return j->n++;
}

static int js_hex4(const char *s, unsigned *out)
{
	*out = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
			     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
			     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;

		if (d > 15)
			return -1;
		*out = *out << 4 | d;
	}
	return 0;
}

/* Append code point @cp to @s at *@w as UTF-8. */
static void js_utf8(char *s, size_t *w, unsigned cp)
{
	if (cp < 0x80) {
		s[(*w)++] = (char)cp;
	} else if (cp < 0x800) {
		s[(*w)++] = (char)(0xc0 | cp >> 6);
		s[(*w)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		s[(*w)++] = (char)(0xe0 | cp >> 12);
		s[(*w)++] = (char)(0x80 | (cp >> 6 & 0x3f));
		s[(*w)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		s[(*w)++] = (char)(0xf0 | cp >> 18);
		s[(*w)++] = (char)(0x80 | (cp >> 12 & 0x3f));
		s[(*w)++] = (char)(0x80 | (cp >> 6 & 0x3f));
		s[(*w)++] = (char)(0x80 | (cp & 0x3f));
	}
}

/*
 * The string at *@p (at its opening quote), decoded in place: the decoded
 * text is never longer than its escaped form, so it is written over it and
 * NUL-terminated where the text ended.  \u0000 is refused (it would end the
 * C string early).
 */
static int js_string(struct js *j, size_t *p)
{
	size_t r = *p + 1, w = r, e;
	unsigned cp, lo;

	if (js_add(j, JS_STRING, w) < 0)
		return -1;
	for (;;) {
		if (r >= j->len) {
			js_fail(j, "unterminated string at byte %zu", *p);
			return -1;
		}
		if (j->s[r] == '"')
			break;
		if ((unsigned char)j->s[r] < 0x20) {
			js_fail(j, "control character in a string at byte %zu", r);
			return -1;
		}
		if (j->s[r] != '\\') {
			j->s[w++] = j->s[r++];
			continue;
		}
		e = r;
		r += 2;
		switch (e + 1 < j->len ? j->s[e + 1] : '\0') {
		case '"': j->s[w++] = '"'; continue;
		case '\\': j->s[w++] = '\\'; continue;
		case '/': j->s[w++] = '/'; continue;
		case 'b': j->s[w++] = '\b'; continue;
		case 'f': j->s[w++] = '\f'; continue;
		case 'n': j->s[w++] = '\n'; continue;
		case 'r': j->s[w++] = '\r'; continue;
		case 't': j->s[w++] = '\t'; continue;
		case 'u': break;
		default: goto bad_escape;
		}
		if (r + 4 > j->len || js_hex4(j->s + r, &cp) || cp == 0)
			goto bad_escape;
		r += 4;
		if (cp >= 0xd800 && cp < 0xdc00) {
			/* A high surrogate: its low half must follow. */
			if (r + 6 > j->len || j->s[r] != '\\' || j->s[r + 1] != 'u' ||
			    js_hex4(j->s + r + 2, &lo) || lo < 0xdc00 || lo >= 0xe000)
				goto bad_escape;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			r += 6;
		} else if (cp >= 0xdc00 && cp < 0xe000) {
			goto bad_escape;
		}
		js_utf8(j->s, &w, cp);
	}
	j->s[w] = '\0';
	*p = r + 1;
	return 0;
bad_escape:
	js_fail(j, "bad escape in a string at byte %zu", e);
	return -1;
}

/* The number at *@p: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int js_number(struct js *j, size_t *p)
{
	size_t q = *p, d;

#define DIGITS() for (d = q; q < j->len && j->s[q] >= '0' && j->s[q] <= '9'; q++)
	if (q < j->len && j->s[q] == '-')
		q++;
	DIGITS();
	if (q == d || (j->s[d] == '0' && q - d > 1))
		goto bad;
	if (q < j->len && j->s[q] == '.') {
		q++;
		DIGITS();
		if (q == d)
			goto bad;
	}
	if (q < j->len && (j->s[q] == 'e' || j->s[q] == 'E')) {
		q++;
		if (q < j->len && (j->s[q] == '+' || j->s[q] == '-'))
			q++;
		DIGITS();
		if (q == d)
			goto bad;
	}
#undef DIGITS
	if (js_add(j, JS_NUMBER, *p) < 0)
		return -1;
	*p = q;
	return 0;
bad:
	js_fail(j, "bad number at byte %zu", *p);
	return -1;
}

/* The value at *@p (after white space), and everything it contains. */
static int js_value(struct js *j, size_t *p, int depth)
{
	static const struct { const char *word; enum js_type type; } words[] = {
		{ "true", JS_TRUE }, { "false", JS_FALSE }, { "null", JS_NULL },
	};
	int self, object;
	char close;

	js_ws(j, p);
	if (*p >= j->len) {
		js_fail(j, "unexpected end at byte %zu", *p);
		return -1;
	}
	if (j->s[*p] == '"')
		return js_string(j, p);
	if (j->s[*p] == '-' || (j->s[*p] >= '0' && j->s[*p] <= '9'))
		return js_number(j, p);
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t wl = strlen(words[i].word);

		if (j->len - *p >= wl && memcmp(j->s + *p, words[i].word, wl) == 0) {
			*p += wl;
			return js_add(j, words[i].type, *p - wl) < 0 ? -1 : 0;
		}
	}
	if (j->s[*p] != '{' && j->s[*p] != '[') {
		js_fail(j, "unexpected '%c' at byte %zu", j->s[*p], *p);
		return -1;
	}
	if (depth >= JS_DEPTH_MAX) {
		js_fail(j, "nested deeper than %d at byte %zu", JS_DEPTH_MAX, *p);
		return -1;
	}
	object = j->s[*p] == '{';
	close = object ? '}' : ']';
	self = js_add(j, object ? JS_OBJECT : JS_ARRAY, *p);
	if (self < 0)
		return -1;
	(*p)++;
	js_ws(j, p);
	if (*p < j->len && j->s[*p] == close) {
		(*p)++;
		return 0;
	}
	for (;;) {
		if (object) {
			js_ws(j, p);
			if (*p >= j->len || j->s[*p] != '"' || js_string(j, p))
				goto expected;
			js_ws(j, p);
			if (*p >= j->len || j->s[*p] != ':')
				goto expected;
			(*p)++;
		}
		if (js_value(j, p, depth + 1))
			return -1;
		js_ws(j, p);
		if (*p < j->len && j->s[*p] == ',') {
			(*p)++;
			continue;
		}
		if (*p < j->len && j->s[*p] == close)
			break;
		goto expected;
	}
	(*p)++;
	j->v[self].next = j->n;
	return 0;
expected:
	js_fail(j, "expected %s at byte %zu", object ? "a \"key\": value, ',' or '}'" : "',' or ']'",
		*p);
	return -1;
}

/* Parse @len bytes of @text into @j (released with js_free, also on failure). */
static int js_parse(struct js *j, const char *text, size_t len)
{
	size_t p = 0;

	memset(j, 0, sizeof(*j));
	j->s = malloc(len + 1);
	if (!j->s) {
		js_fail(j, "out of memory");
		return -1;
	}
	memcpy(j->s, text, len);
	j->s[len] = '\0';
	j->len = len;
	if (js_value(j, &p, 0))
		return -1;
	js_ws(j, &p);
	if (p != len) {
		js_fail(j, "text after the value at byte %zu", p);
		return -1;
	}
	return 0;
}

static void js_free(struct js *j)
{
	free(j->s);
	free(j->v);
}

/* The member @key (a decoded key) of the object at @obj, or -1. */
static int js_member(const struct js *j, int obj, const char *key)
{
	if (obj < 0 || j->v[obj].type != JS_OBJECT)
		return -1;
	for (int k = obj + 1; k < j->v[obj].next; k = j->v[k + 1].next)
		if (strcmp(j->s + j->v[k].start, key) == 0)
			return k + 1;
	return -1;
}

/* The value at @path below the value @at: keys separated by '.', e.g.
 * "messages.dropped"; "" is @at itself.  -1 if there is none. */
static int js_find(const struct js *j, int at, const char *path)
{
	char key[64];
	const char *p = path, *dot;
	int v = at;

	while (*p && v >= 0) {
		dot = strchr(p, '.');
		snprintf(key, sizeof(key), "%.*s", dot ? (int)(dot - p) : (int)strlen(p), p);
		v = js_member(j, v, key);
		p = dot ? dot + 1 : p + strlen(p);
	}
	return v;
}

/*
 * js_find, where a missing value is an error: the first one is noted in
 * j->err, so a report can be built first and checked once.
 */
static int js_at(struct js *j, int at, const char *path)
{
	int v = js_find(j, at, path);

	if (v < 0 && at >= 0)
		js_fail(j, "no \"%s\"", path);
	return v;
}

/* The string at @path, or "" (noting the error). */
static const char *js_str(struct js *j, int at, const char *path)
{
	int v = js_at(j, at, path);

	if (v >= 0 && j->v[v].type == JS_STRING)
		return j->s + j->v[v].start;
	if (v >= 0)
		js_fail(j, "\"%s\" is not a string", path);
	return "";
}

/* The unsigned integer value @v (named @what in an error), or 0 (noting the error). */
static uint64_t js_count(struct js *j, int v, const char *what)
{
	unsigned long long n;
	char *end;

	if (v < 0)
		return 0;
	errno = 0;
	n = strtoull(j->s + j->v[v].start, &end, 10);
	if (j->v[v].type != JS_NUMBER || j->s[j->v[v].start] == '-' || errno ||
	    (*end && strchr(".eE", *end))) {
		js_fail(j, "\"%s\" is not a count", what);
		return 0;
	}
	return n;
}

/* The unsigned integer at @path, or 0 (noting the error). */
static uint64_t js_u64(struct js *j, int at, const char *path)
{
	return js_count(j, js_at(j, at, path), path);
}

/* The number at @path (a count or a decimal such as an age), or 0 (noting the error). */
static double js_double(struct js *j, int at, const char *path)
{
	int v = js_at(j, at, path);

	if (v >= 0 && j->v[v].type == JS_NUMBER)
		return strtod(j->s + j->v[v].start, NULL);
	if (v >= 0)
		js_fail(j, "\"%s\" is not a number", path);
	return 0;
}

/* The boolean at @path, or false (noting the error). */
static bool js_bool(struct js *j, int at, const char *path)
{
	int v = js_at(j, at, path);

	if (v >= 0 && j->v[v].type != JS_TRUE && j->v[v].type != JS_FALSE)
		js_fail(j, "\"%s\" is not true or false", path);
	return v >= 0 && j->v[v].type == JS_TRUE;
}

/* 1 with the reason printed if reading the answer to @req found it malformed, else 0. */
static int malformed(const struct js *j, const char *sock, const char *req)
{
	if (!j->err[0])
		return 0;
	fprintf(stderr, "cxfsctl: %s: malformed answer to \"%s\": %s\n", sock, req, j->err);
	return 1;
}

/*
 * Parse the daemon's answer @reply to @req as one JSON object.  0, or 1 with
 * the reason printed: malformed, or the daemon's own error.
 */
static int parse_reply(struct js *j, const char *sock, const char *req, const char *reply)
{
	int e;

	memset(j, 0, sizeof(*j));
	if (!*reply || strncmp(reply, "error:", 6) == 0) {
		const char *why = *reply ? reply : "no answer";

		fprintf(stderr, "cxfsctl: %s: \"%s\": %.*s\n", sock, req, (int)strcspn(why, "\n"),
			why);
		return 1;
	}
	if (js_parse(j, reply, strlen(reply)) == 0 && j->v[0].type != JS_OBJECT)
		js_fail(j, "not a JSON object");
	if (malformed(j, sock, req))
		return 1;
	e = js_member(j, 0, "error");
	if (e >= 0) {
		fprintf(stderr, "cxfsctl: %s: \"%s\": error: %s\n", sock, req,
			j->v[e].type == JS_STRING ? j->s + j->v[e].start : "(no reason given)");
		return 1;
	}
	return 0;
}

/* ---- token waits ------------------------------------------------------------ */

/*
 * The "waits" object at @waits (of "status json" or "tokens INO"): one line
 * per wait, the server's first, each with its age and the daemon's text
 * (the same as its log line).  The first line starts with @label in a
 * column @width wide; "none" if nothing waits.
 */
static void print_waits(FILE *f, struct js *j, int waits, const char *label, int width)
{
	static const char *const sides[] = { "server", "client" };
	uint64_t left_out = js_u64(j, waits, "left_out");
	int printed = 0;

	for (size_t s = 0; s < sizeof(sides) / sizeof(sides[0]); s++) {
		int list = js_find(j, waits, sides[s]);

		if (list < 0)
			continue;    /* "server" only on the metadata server */
		if (j->v[list].type != JS_ARRAY) {
			js_fail(j, "\"waits.%s\" is not an array", sides[s]);
			continue;
		}
		for (int k = list + 1; k < j->v[list].next; k = j->v[k].next)
			fprintf(f, "  %-*s  %s  %5.1f s: %s\n", width, printed++ ? "" : label,
				sides[s], js_double(j, k, "age_s"), js_str(j, k, "text"));
	}
	if (!printed)
		fprintf(f, "  %-*s  none\n", width, label);
	if (left_out)
		fprintf(f, "  %-*s  (%llu more not shown)\n", width, "",
			(unsigned long long)left_out);
}

/* ---- status --------------------------------------------------------------- */

/* Node @nd's "ADDRESS:PORT" ("[ADDRESS]:PORT" for IPv6) into @buf; snprintf's result. */
static int node_address(struct js *j, int nd, char *buf, size_t size)
{
	const char *a = js_str(j, nd, "address");

	return snprintf(buf, size, strchr(a, ':') ? "[%s]:%llu" : "%s:%llu", a,
			(unsigned long long)js_u64(j, nd, "port"));
}

/*
 * The counter lines of the cluster report, in two groups (before and after
 * the dropped frames): each {KEY} of @text is the count at @base.KEY of the
 * "status json" object ({KEY:MiB}: that many bytes in MiB).  A line whose
 * @base is absent is left out if it is @optional (the token server's, on a
 * client), else the object is malformed.
 */
static const struct counter_line {
	int group;
	const char *label, *base, *text;
	bool optional;
} counter_lines[] = {
	{ 0, "tokens", "cluster.token_client",
	  "cached on {inodes} inodes; {acquires_cached} acquires from the cache, "
	  "{acquires_server} from the server; {recalls} recalls returned, {refusals} refused", false },
	{ 0, "granted", "cluster.token_server",
	  "on {inodes} inodes; {grants} grants, {waiting} waiting; {recalls} recalls sent, "
	  "{returns} returns, {refusals} refusals", true },
	{ 0, "messages", "cluster.messages",
	  "{sent} sent, {received} received; {calls} calls, {timeouts} timeouts; "
	  "{connects} connects, {disconnects} disconnects", false },
	{ 1, "cache", "cluster.cache",
	  "attributes {attr_hits} hits, {attr_misses} misses; "
	  "names {name_hits} hits, {name_misses} misses", false },
	{ 1, "data path", "cluster.cache",
	  "{map_fetches} extent map fetches, {allocs} allocations, {write_dones} writes done, "
	  "{forwards} forwarded, {recalls_in} recalls in, {page_invals} page invalidations", false },
	{ 1, "data cache", "cluster.data_cache",
	  "{dirty_bytes:MiB} MiB dirty, {clean_bytes:MiB} MiB clean; {hits} hits, {misses} misses; "
	  "{flushes} write-backs ({flushed_bytes:MiB} MiB), {waits} writers waited, "
	  "{write_errors} errors", true },
	{ 1, "unsafe", "cluster.unsafe",
	  "{kept} answered requests kept until durable ({kept_bytes} bytes; durable {durable}); "
	  "{applied} applied with an id, {answered_again} answered again", true },
	{ 1, "device", "device",
	  "{reads} reads ({bytes_read:MiB} MiB), {writes} writes ({bytes_written:MiB} MiB), "
	  "{flushes} flushes, {reconnects} reconnects", false },
};

/* The counter lines of @group from the "status json" object in @j. */
static void print_counters(FILE *f, struct js *j, int group)
{
	char path[128];

	for (size_t i = 0; i < sizeof(counter_lines) / sizeof(counter_lines[0]); i++) {
		const struct counter_line *line = &counter_lines[i];

		if (line->group != group || (line->optional && js_find(j, 0, line->base) < 0))
			continue;
		fprintf(f, "  %-10s  ", line->label);
		for (const char *p = line->text; *p; p++) {
			const char *end = *p == '{' ? strchr(p, '}') : NULL;
			int n = end ? (int)(end - p - 1) : 0;
			bool mib = n > 4 && strncmp(end - 4, ":MiB", 4) == 0;

			if (!end) {
				fputc(*p, f);
				continue;
			}
			snprintf(path, sizeof(path), "%s.%.*s", line->base, mib ? n - 4 : n, p + 1);
			fprintf(f, "%llu", (unsigned long long)(js_u64(j, 0, path) >> (mib ? 20 : 0)));
			p = end;
		}
		fputc('\n', f);
	}
}

/*
 * The RPC worker lanes ("cluster.lanes", an object of lanes by name), one
 * line each; nothing from a daemon that does not say.
 */
static void print_lanes(FILE *f, struct js *j)
{
	int lanes = js_find(j, 0, "cluster.lanes");
	size_t wname = 0;
	int k;

	if (lanes < 0)
		return;
	if (j->v[lanes].type != JS_OBJECT) {
		js_fail(j, "\"cluster.lanes\" is not an object");
		return;
	}
	for (k = lanes + 1; k < j->v[lanes].next; k = j->v[k + 1].next)
		if (strlen(j->s + j->v[k].start) > wname)
			wname = strlen(j->s + j->v[k].start);
	for (k = lanes + 1; k < j->v[lanes].next; k = j->v[k + 1].next)
		fprintf(f, "  %-10s  %-*s  %llu threads, %llu running, %llu queued; peak %llu of %llu; "
			"%llu handled, %llu waited for a free thread\n",
			k == lanes + 1 ? "workers" : "", (int)wname, j->s + j->v[k].start,
			(unsigned long long)js_u64(j, k + 1, "workers"),
			(unsigned long long)js_u64(j, k + 1, "running"),
			(unsigned long long)js_u64(j, k + 1, "queued"),
			(unsigned long long)js_u64(j, k + 1, "peak"),
			(unsigned long long)js_u64(j, k + 1, "max"),
			(unsigned long long)js_u64(j, k + 1, "handled"),
			(unsigned long long)js_u64(j, k + 1, "waited"));
}

/* The membership ("cluster.membership"): epoch, leader, quorum, each node's state. */
static void print_membership(FILE *f, struct js *j, int cl)
{
	int m = js_find(j, cl, "membership"), nodes, k;

	if (m < 0 || j->v[m].type != JS_OBJECT)
		return;
	fprintf(f, "  membership  epoch %llu (floor %llu), leader %s, quorum %s, this node %s\n",
		(unsigned long long)js_u64(j, m, "epoch"), (unsigned long long)js_u64(j, m, "floor"),
		*js_str(j, m, "leader") ?
		js_str(j, m, "leader") : "none", js_bool(j, m, "quorum") ? "yes" : "NO",
		js_str(j, m, "state"));
	nodes = js_at(j, m, "nodes");
	if (nodes < 0 || j->v[nodes].type != JS_ARRAY)
		return;
	for (k = nodes + 1; k < j->v[nodes].next; k = j->v[k].next) {
		int lv = js_at(j, k, "levels");

		fprintf(f, "              %-10s %-7s %-9s heard %6lld ms ago  levels", js_str(j, k, "name"),
			js_bool(j, k, "member") ? "member" : "-", js_str(j, k, "state"),
			(long long)js_double(j, k, "heard_ms_ago"));
		for (int e = lv + 1; lv >= 0 && e < j->v[lv].next; e = j->v[e + 1].next)
			fprintf(f, " %s %s", j->s + j->v[e].start, j->s + j->v[e + 1].start);
		fprintf(f, "\n");
	}
	fprintf(f, "  fenced      %s\n", *js_str(j, cl, "fenced") ? js_str(j, cl, "fenced") : "none");
	if (js_find(j, cl, "fencing") >= 0)
		fprintf(f, "  fencing     key %s; this node %s; %llu write(s) refused by the target\n",
			js_str(j, cl, "fencing.key"),
			js_bool(j, cl, "fencing.self_fenced") ? "FENCED" : "registered",
			(unsigned long long)js_u64(j, cl, "fencing.reservation_conflicts"));
	fprintf(f, "  refused     %llu datagram(s) with a wrong MAC, %llu replayed, %llu of an "
		"old epoch, %llu for protocol levels%s%s\n",
		(unsigned long long)js_u64(j, m, "refused.mac"),
		(unsigned long long)js_u64(j, m, "refused.replay"),
		(unsigned long long)js_u64(j, m, "refused.old_epoch"),
		(unsigned long long)js_u64(j, m, "refused.levels"),
		*js_str(j, m, "last_refusal") ? "; last: " : "", js_str(j, m, "last_refusal"));
}

/* Recovery ("cluster.recovery"): now, and the last recoveries this node saw. */
static void print_recovery(FILE *f, struct js *j, int cl)
{
	int r = js_find(j, cl, "recovery"), h, k;

	if (r < 0 || j->v[r].type != JS_OBJECT)
		return;
	if (strcmp(js_str(j, r, "state"), "running") == 0)
		fprintf(f, "  recovery    RUNNING: pass %llu, phase %s, elected %s\n",
			(unsigned long long)js_u64(j, r, "pass"), js_str(j, r, "phase"),
			js_str(j, r, "elected"));
	else
		fprintf(f, "  recovery    %s; %llu so far\n",
			js_bool(j, r, "busy") ? "WAITING for a new metadata server" : "idle",
			(unsigned long long)js_u64(j, r, "count"));
	h = js_at(j, r, "history");
	for (k = h + 1; h >= 0 && j->v[h].type == JS_ARRAY && k < j->v[h].next;
	     k = j->v[k].next)
		fprintf(f, "              #%llu led by %s: %s serves (%s); %.1f ms: celldown %.1f, "
			"gather %.1f, reconstruct %.1f, retarget %.1f\n",
			(unsigned long long)js_u64(j, k, "id"), js_str(j, k, "leader"),
			js_str(j, k, "elected"), js_str(j, k, "result"), js_double(j, k, "ms.total"),
			js_double(j, k, "ms.celldown"), js_double(j, k, "ms.gather"),
			js_double(j, k, "ms.reconstruct"), js_double(j, k, "ms.retarget"));
}

/* The cluster node's report from its "status json" in @j (root object 0). */
static void print_cluster_status(FILE *f, struct js *j)
{
	int cl = js_at(j, 0, "cluster"), nodes = js_at(j, cl, "nodes");
	int drop = js_at(j, cl, "messages.dropped");
	const char *self = js_str(j, 0, "node"), *server = js_str(j, cl, "server");
	bool is_server = js_bool(j, cl, "is_server");
	size_t wname = 4, waddr = 7;
	char addr[300];
	int k, first;

	fprintf(f, "node %s (cluster mode, %s), up %llu s\n", self,
		js_bool(j, cl, "cut_off") ? "CUT OFF: no quorum, requests wait" :
		is_server ? "metadata server" : "client", (unsigned long long)js_u64(j, 0, "uptime_s"));
	fprintf(f, "filesystem %s  cluster %s\n", js_str(j, cl, "filesystem"),
		js_str(j, cl, "cluster"));
	fprintf(f, "  served by   %s\n", !*server ? "(no metadata server known)"
				   : is_server ? "this node" : server);
	fprintf(f, "  volume      %s\n", js_str(j, 0, "volume"));
	fprintf(f, "  mounted on  %s\n", js_str(j, 0, "mountpoint"));
	fprintf(f, "  vnodes      %llu cached\n", (unsigned long long)js_u64(j, 0, "vnodes"));

	/* The node table, its columns as wide as their longest entry. */
	if (nodes >= 0 && j->v[nodes].type != JS_ARRAY) {
		js_fail(j, "\"cluster.nodes\" is not an array");
		nodes = -1;
	}
	for (k = nodes + 1; nodes >= 0 && k < j->v[nodes].next; k = j->v[k].next) {
		int l = node_address(j, k, addr, sizeof(addr));

		if (strlen(js_str(j, k, "name")) > wname)
			wname = strlen(js_str(j, k, "name"));
		if (l > 0 && (size_t)l > waddr)
			waddr = (size_t)l;
	}
	fprintf(f, "  nodes       %-*s  %-*s  may serve  known up\n", (int)wname, "name",
		(int)waddr, "address");
	for (k = nodes + 1; nodes >= 0 && k < j->v[nodes].next; k = j->v[k].next) {
		const char *name = js_str(j, k, "name");
		bool up = js_bool(j, k, "known_up");
		bool serves = strcmp(name, server) == 0, me = strcmp(name, self) == 0;

		node_address(j, k, addr, sizeof(addr));
		fprintf(f, "              %-*s  %-*s  %-9s  %s%s%s%s%s\n", (int)wname, name,
			(int)waddr, addr, js_bool(j, k, "may_serve") ? "yes" : "no",
			up ? "yes" : "no", serves || me ? (up ? "       " : "        ") : "",
			serves ? "metadata server" : "", serves && me ? ", " : "",
			me ? "this node" : "");
	}

	print_membership(f, j, cl);
	print_recovery(f, j, cl);
	print_counters(f, j, 0);
	if (drop >= 0 && j->v[drop].type != JS_OBJECT) {
		js_fail(j, "\"cluster.messages.dropped\" is not an object");
		drop = -1;
	}
	fprintf(f, "  dropped     ");
	first = 1;
	for (k = drop + 1; drop >= 0 && k < j->v[drop].next; k = j->v[k + 1].next) {
		uint64_t n = js_count(j, k + 1, j->s + j->v[k].start);

		if (n)
			fprintf(f, "%s%llu %s", first ? "" : ", ", (unsigned long long)n,
				j->s + j->v[k].start);
		first = first && !n;
	}
	fprintf(f, "%s\n", first ? "none" : "");
	print_lanes(f, j);

	print_counters(f, j, 1);
	print_waits(f, j, js_at(j, cl, "waits"), "waits", 10);
}

/* Print the daemon's answer @reply as it is, and free it; 0, or 1 if it is an error. */
static int pass_through(const char *sock, char *reply)
{
	int rc = !*reply || strncmp(reply, "error:", 6) == 0;

	if (!*reply)
		fprintf(stderr, "cxfsctl: %s: no answer\n", sock);
	fputs(reply, stdout);
	free(reply);
	return rc;
}

/*
 * `status`: with --json the daemon's object as it is.  Else the daemon's
 * text, unless its first line says it runs in cluster mode: then a report
 * made here from its "status json" (the text only dumps the cluster's JSON).
 */
static int cmd_status(const char *sock, int json)
{
	char *reply = NULL, *report = NULL, *mode;
	size_t report_len = 0;
	struct js j;
	FILE *f;
	int rc;

	if (ask(sock, json ? "status json" : "status", &reply))
		return 1;
	mode = strstr(reply, " (cluster mode)");
	if (json || !mode || (size_t)(mode - reply) > strcspn(reply, "\n"))
		return pass_through(sock, reply);
	free(reply);
	if (ask(sock, "status json", &reply))
		return 1;
	rc = parse_reply(&j, sock, "status json", reply);
	free(reply);
	if (rc)
		goto out;
	/* Built in memory first, so a malformed object prints no half report. */
	f = open_memstream(&report, &report_len);
	if (!f) {
		fprintf(stderr, "cxfsctl: out of memory\n");
		rc = 1;
		goto out;
	}
	print_cluster_status(f, &j);
	fclose(f);
	rc = malformed(&j, sock, "status json");
	if (!rc)
		fwrite(report, 1, report_len, stdout);
	free(report);
out:
	js_free(&j);
	return rc;
}

/* ---- tokens --------------------------------------------------------------- */

/*
 * The source ("cxfs:VOLUME") of the cxfs mount whose device is @dev, from
 * /proc/self/mountinfo, into @src; false if @dev is no cxfs mount.
 */
static bool cxfs_mount_source(dev_t dev, char *src, size_t size)
{
	char line[4096], majmin[32], fstype[64], source[1024];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return false;
	snprintf(majmin, sizeof(majmin), "%u:%u", major(dev), minor(dev));
	while (!found && fgets(line, sizeof(line), f)) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE ... */
		char *dash = strstr(line, " - "), field[32];

		if (!dash || sscanf(line, "%*s %*s %31s", field) != 1 || strcmp(field, majmin) != 0 ||
		    sscanf(dash + 3, "%63s %1023s", fstype, source) != 2)
			continue;
		found = strcmp(fstype, "fuse.cxfs") == 0;
		if (found)
			snprintf(src, size, "%s", source);
	}
	fclose(f);
	return found;
}

/*
 * Is @st (a stat of @path) a file of the filesystem the daemon mounts at
 * @mnt?  On its mount, or on another node's mount of the same volume (a
 * cluster on one machine).  0, or 1 with the reason printed.
 */
static int check_path(const char *path, const struct stat *st, const char *mnt)
{
	char a[1024], b[1024];
	struct stat ms;

	if (stat(mnt, &ms)) {
		fprintf(stderr, "cxfsctl: the daemon's mount point %s: %s\n", mnt, strerror(errno));
		return 1;
	}
	if (st->st_dev == ms.st_dev ||
	    (cxfs_mount_source(st->st_dev, a, sizeof(a)) &&
	     cxfs_mount_source(ms.st_dev, b, sizeof(b)) && strcmp(a, b) == 0))
		return 0;
	fprintf(stderr, "cxfsctl: %s: not on the cxfs filesystem mounted at %s\n", path, mnt);
	return 1;
}

/* One level set ("cached", or a node's grants) as "token=level ...". */
static void print_levels(struct js *j, int set)
{
	if (set < 0 || j->v[set].type != JS_OBJECT) {
		js_fail(j, "a token set is not an object");
		return;
	}
	if (set + 1 == j->v[set].next)
		printf(" none");
	for (int k = set + 1; k < j->v[set].next; k = j->v[k + 1].next) {
		if (j->v[k + 1].type != JS_STRING)
			js_fail(j, "the level of token \"%s\" is not a string", j->s + j->v[k].start);
		printf(" %s=%s", j->s + j->v[k].start,
		       j->v[k + 1].type == JS_STRING ? j->s + j->v[k + 1].start : "?");
	}
	printf("\n");
}

/*
 * The inode @arg names: its number from stat(), checked to be on the
 * daemon's filesystem, or with @by_ino the number @arg is (no stat, which
 * would wait on a stuck inode).  0, or 1 with the reason printed.
 */
static int tokens_ino(const char *arg, bool by_ino, const char *mnt, unsigned long long *ino)
{
	struct stat st;
	char *end;

	if (by_ino) {
		errno = 0;
		*ino = strtoull(arg, &end, 10);
		if (errno || end == arg || *end || *ino == 0 || arg[0] == '-') {
			fprintf(stderr, "cxfsctl: %s: not an inode number\n", arg);
			return 1;
		}
		return 0;
	}
	if (stat(arg, &st)) {
		fprintf(stderr, "cxfsctl: %s: %s\n", arg, strerror(errno));
		return 1;
	}
	if (check_path(arg, &st, mnt))
		return 1;
	*ino = (unsigned long long)st.st_ino;
	return 0;
}

/*
 * `tokens PATH...` (or with @by_ino `tokens --inode INO...`): what this node
 * (and, on the MDS, every node) holds of each, and the token waits on it.
 */
static int cmd_tokens(const char *sock, int json, bool by_ino, char **paths, int npaths)
{
	char *reply = NULL, req[64], mnt[4096], server[256];
	unsigned long long ino;
	struct js j;
	int rc, granted;

	/* The daemon's mode, mount point and metadata server, once. */
	if (ask(sock, "status json", &reply))
		return 1;
	/* Looked for in the text: a single-mode daemon's JSON need not parse. */
	if (strncmp(reply, "error:", 6) != 0 && strstr(reply, "\"mode\":\"single\"")) {
		fprintf(stderr, "cxfsctl: tokens needs a cluster-mode daemon; the one at %s runs "
			"in single-machine mode\n", sock);
		free(reply);
		return 1;
	}
	rc = parse_reply(&j, sock, "status json", reply);
	free(reply);
	if (!rc && strcmp(js_str(&j, 0, "mode"), "cluster") != 0) {
		fprintf(stderr, "cxfsctl: tokens needs a cluster-mode daemon; the one at %s does "
			"not say it runs in cluster mode\n", sock);
		rc = 1;
	}
	if (!rc) {
		snprintf(mnt, sizeof(mnt), "%s", js_str(&j, 0, "mountpoint"));
		snprintf(server, sizeof(server), "%s", js_str(&j, 0, "cluster.server"));
		rc = malformed(&j, sock, "status json");
	}
	js_free(&j);
	if (rc)
		return 1;

	for (int i = 0; i < npaths; i++) {
		if (tokens_ino(paths[i], by_ino, mnt, &ino)) {
			rc = 1;
			continue;
		}
		snprintf(req, sizeof(req), "tokens %llu", ino);
		if (ask(sock, req, &reply))
			return 1;
		if (parse_reply(&j, sock, req, reply)) {
			rc = 1;
			goto next;
		}
		if (json) {
			fputs(reply, stdout);
			goto next;
		}
		if (by_ino)
			printf("inode %llu\n", ino);
		else
			printf("%s  inode %llu\n", paths[i], ino);
		printf("  cached by %s:", js_str(&j, 0, "node"));
		print_levels(&j, js_at(&j, 0, "cached"));
		if (js_bool(&j, 0, "io_alone"))
			printf("  %s is the only node writing it (I/O-exclusive)\n",
			       js_str(&j, 0, "node"));
		granted = js_member(&j, 0, "granted");
		if (granted < 0)
			printf("  granted: known to the metadata server%s%s%s\n", *server ? " (" : "",
			       server, *server ? ")" : "");
		else if (j.v[granted].type != JS_OBJECT)
			js_fail(&j, "\"granted\" is not an object");
		else if (granted + 1 == j.v[granted].next)
			printf("  granted to no node\n");
		for (int k = granted + 1; granted >= 0 && k < j.v[granted].next; k = j.v[k + 1].next) {
			printf("  granted to %s:", j.s + j.v[k].start);
			print_levels(&j, k + 1);
		}
		print_waits(stdout, &j, js_at(&j, 0, "waits"), "waits", 5);
		rc |= malformed(&j, sock, req);
next:
		js_free(&j);
		free(reply);
	}
	return rc;
}

/*
 * Send @req, print the answer: on stdout with exit status 0 if it begins
 * with @ok (NULL: anything but "error:"), else on stderr with 1.
 */
static int ask_print(const char *sock, const char *req, const char *ok)
{
	char *reply = NULL;
	int rc;

	if (ask(sock, req, &reply))
		return 1;
	rc = ok ? strncmp(reply, ok, strlen(ok)) != 0 : strncmp(reply, "error:", 6) == 0;
	fputs(reply, rc ? stderr : stdout);
	free(reply);
	return rc;
}

/*
 * `volume attach MIRROR LUN`, `volume detach MIRROR LEG`, `volume grow LUN`
 * (@args, @n of them): the
 * daemon changes the layout on every node and says how it went.
 */
static int cmd_volume_change(const char *sock, char **args, int n)
{
	char req[300] = "volume";
	size_t len = strlen(req);

	for (int i = 0; i < n; i++) {
		if (strpbrk(args[i], " \n") || len + 1 + strlen(args[i]) >= 256) {
			fprintf(stderr, "cxfsctl: volume %s: bad or too long argument \"%s\"\n", args[0],
				args[i]);
			return 2;
		}
		len += (size_t)snprintf(req + len, sizeof(req) - len, " %s", args[i]);
	}
	return ask_print(sock, req, "ok");
}

/* `relocate FS NODE`: the daemon moves the metadata server and says how it went. */
static int cmd_relocate(const char *sock, const char *fs, const char *node)
{
	char req[600];

	if (strlen(fs) > 255 || strlen(node) > 255 || strpbrk(fs, " \n") || strpbrk(node, " \n")) {
		fprintf(stderr, "cxfsctl: relocate: bad filesystem or node name\n");
		return 2;
	}
	snprintf(req, sizeof(req), "relocate %s %s", fs, node);
	return ask_print(sock, req, "ok");
}

/* `backup FILE`: the daemon writes the copy (FILE made absolute: it has its own cwd). */
static int cmd_backup(const char *sock, const char *file)
{
	char cwd[4096], req[320];
	int n;

	if (file[0] != '/' && !getcwd(cwd, sizeof(cwd))) {
		fprintf(stderr, "cxfsctl: backup: cannot tell the current directory: %s\n",
			strerror(errno));
		return 1;
	}
	n = file[0] == '/' ? snprintf(req, sizeof(req), "backup %s", file)
			   : snprintf(req, sizeof(req), "backup %s/%s", cwd, file);
	if (n < 0 || n > 255 || strchr(file, '\n')) {
		fprintf(stderr, "cxfsctl: backup: the path is too long (or holds a newline)\n");
		return 2;
	}
	return ask_print(sock, req, "ok");
}

/*
 * `volume revive`: start the daemon's revive, then ask for its progress every
 * 0.2 s (one line redrawn on a terminal, a line each 10% otherwise) until
 * it is idle; its result decides the exit status.
 */
static int cmd_revive(const char *sock, const char *rate)
{
	const struct timespec pause = { 0, 200 * 1000 * 1000 };
	int tty = isatty(STDERR_FILENO), rc, decile = -1;
	unsigned mirror, leg, last = ~0u;
	unsigned long long done, total;
	char *reply = NULL, req[64];

	snprintf(req, sizeof(req), "volume revive%s%s", rate ? " " : "", rate ? rate : "");
	if (ask_print(sock, req, "ok"))
		return 1;
	for (;;) {
		nanosleep(&pause, NULL);
		if (ask(sock, "volume progress", &reply))
			return 1;
		if (sscanf(reply, "running %u %u %llu %llu", &mirror, &leg, &done, &total) == 4) {
			/* A terminal: every answer; otherwise a line each 10% of a mirror. */
			if (total && (tty || mirror != last || (int)(10 * done / total) != decile))
				fprintf(stderr, "%smirror %u leg %u: %5.1f%% (%llu of %llu MiB)%s",
					tty ? "\r" : "", mirror, leg, 100.0 * (double)done / (double)total,
					done >> 20, total >> 20, tty ? "" : "\n");
			if (total) {
				last = mirror;
				decile = (int)(10 * done / total);
			}
			free(reply);
			continue;
		}
		if (tty && last != ~0u)
			fputc('\n', stderr);
		rc = strncmp(reply, "idle ok", 7) != 0;
		fputs(reply + (strncmp(reply, "idle ", 5) == 0 ? 5 : 0), rc ? stderr : stdout);
		free(reply);
		return rc;
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "inode", no_argument, NULL, 'i' },
		{ "max-rate", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sockaddr_un sa;
	const char *sock = CXFSD_ADMIN_SOCKET, *cmd, *rate = NULL;
	bool by_ino = false;
	int json = 0, c;

	while ((c = getopt_long(argc, argv, "s:jir:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'j': json = 1; break;
		case 'i': by_ino = true; break;
		case 'r': rate = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	cmd = optind < argc ? argv[optind] : "";
	if (!(strcmp(cmd, "status") == 0 && optind == argc - 1) &&
	    !(strcmp(cmd, "tokens") == 0 && optind < argc - 1) &&
	    !(strcmp(cmd, "relocate") == 0 && optind == argc - 3) &&
	    !(strcmp(cmd, "leave") == 0 && optind == argc - 1) &&
	    !(strcmp(cmd, "metrics") == 0 && optind == argc - 1) &&
	    !(strcmp(cmd, "backup") == 0 && optind == argc - 2) &&
	    !(strcmp(cmd, "volume") == 0 && optind == argc - 1) &&
	    !(strcmp(cmd, "volume") == 0 && optind == argc - 2 &&
	      (strcmp(argv[optind + 1], "revive") == 0 || strcmp(argv[optind + 1], "stop") == 0)) &&
	    !(strcmp(cmd, "volume") == 0 && optind == argc - 3 &&
	      strcmp(argv[optind + 1], "grow") == 0) &&
	    !(strcmp(cmd, "volume") == 0 && optind == argc - 4 &&
	      (strcmp(argv[optind + 1], "attach") == 0 || strcmp(argv[optind + 1], "detach") == 0))) {
		if (strcmp(cmd, "tokens") == 0)
			fprintf(stderr, "cxfsctl: tokens needs at least one %s\n",
				by_ino ? "INO" : "PATH");
		usage(stderr);
		return 2;
	}
	if (rate && (strcmp(cmd, "volume") != 0 || optind != argc - 2 ||
		     strcmp(argv[optind + 1], "revive") != 0 || strlen(rate) > 16)) {
		fprintf(stderr, "cxfsctl: --max-rate goes with volume revive only\n");
		usage(stderr);
		return 2;
	}
	if (by_ino && strcmp(cmd, "tokens") != 0) {
		fprintf(stderr, "cxfsctl: --inode goes with tokens only\n");
		usage(stderr);
		return 2;
	}
	if (strlen(sock) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "cxfsctl: socket path too long: %s\n", sock);
		return 2;
	}
	if (strcmp(cmd, "status") == 0)
		return cmd_status(sock, json);
	if (strcmp(cmd, "relocate") == 0)
		return cmd_relocate(sock, argv[optind + 1], argv[optind + 2]);
	/* leave: the node withdraws from the membership in order, unmounts and exits. */
	if (strcmp(cmd, "leave") == 0)
		return ask_print(sock, "leave", "leaving");
	/* metrics: the Prometheus text, as is. */
	if (strcmp(cmd, "metrics") == 0)
		return ask_print(sock, "metrics", NULL);
	if (strcmp(cmd, "volume") == 0 && optind == argc - 1)
		return ask_print(sock, json ? "volume json" : "volume", NULL);
	if (strcmp(cmd, "volume") == 0 && strcmp(argv[optind + 1], "stop") == 0)
		return ask_print(sock, "volume stop", "ok");
	if (strcmp(cmd, "volume") == 0 && optind < argc - 2)
		return cmd_volume_change(sock, argv + optind + 1, argc - optind - 1);
	if (strcmp(cmd, "volume") == 0)
		return cmd_revive(sock, rate);
	if (strcmp(cmd, "backup") == 0)
		return cmd_backup(sock, argv[optind + 1]);
	return cmd_tokens(sock, json, by_ino, argv + optind + 1, argc - optind - 1);
}
