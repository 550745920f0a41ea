/*
 * cl_wait.c - a stuck cluster explains itself: the token waits of this node
 * (its token client's and, on the MDS, its token server's) as text and as
 * JSON, and the watchdog thread that logs a wait once it is old.
 *
 * Sections:
 *   1. A snapshot of the waits (copied under the token mutexes, formatted
 *      without them).
 *   2. Text: one line per wait, the same in the log and in `cxfsctl`.
 *   3. JSON for `cxfsctl status` and `cxfsctl tokens`.
 *   4. The watchdog.
 *
 * The watchdog checks every second and logs a wait when its age passes
 * T, 6T, 24T and then every 120T (T = --token-wait-log, 5 s by default): one
 * line per wait, not one a second.  It needs no memory of what it logged:
 * a threshold is due when it lies between the wait's age at the previous
 * check and its age now.
 *
 * Lock order: cl_ctx.wmu -> token server mutex (tok_server_waits); the
 * token client's mutex is taken alone.  cl_ctx.wmu keeps the token server
 * (cl_ctx.wts) alive while its waits are read: the server's start and stop
 * (cl_server.c, also in a relocation) set and clear it.  No lock is held
 * while formatting or logging.
 */
#include "cluster/cl_i.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "membership/cms_config.h"

#define CL_WAIT_LOG_MS_DEFAULT 5000u   /* log a wait this old */
#define CL_WAIT_CHECK_MS 1000          /* the watchdog's period */
#define CL_WAIT_LINE_MAX 4096          /* longest log line */
#define CL_WAIT_HOLDER_WAITS 4         /* a holder's own waits named in a line */
#define CL_WAIT_JSON_TAIL 64           /* room kept for the end of the "waits" object */

/* ---- 1. a snapshot ------------------------------------------------------- */

struct cl_waits {
	struct tok_server_wait *s;  /* the token server's waits, oldest first */
	size_t ns, scap;
	struct tok_client_wait *c;  /* the token client's waits, oldest first */
	size_t nc, ccap;
	bool server;                /* this node serves: s holds its token server's */
	unsigned lost;              /* waits not copied (out of memory) */
};

/*
 * Append the @size bytes at @item to the array @arr of *@n (room for
 * *@cap), which may move: returns where it is now, NULL if out of memory
 * (@arr is left as it was).
 */
static void *push(void *arr, size_t *n, size_t *cap, const void *item, size_t size)
{
	char *a = arr;

	if (*n == *cap) {
		a = realloc(arr, (*cap ? 2 * *cap : 8) * size);
		if (!a)
			return NULL;
		*cap = *cap ? 2 * *cap : 8;
	}
	memcpy(a + (*n)++ * size, item, size);
	return a;
}

static void got_server_wait(void *arg, const struct tok_server_wait *w)
{
	struct cl_waits *ws = arg;
	struct tok_server_wait *s = push(ws->s, &ws->ns, &ws->scap, w, sizeof(*w));

	if (s)
		ws->s = s;
	else
		ws->lost++;
}

static void got_client_wait(void *arg, const struct tok_client_wait *w)
{
	struct cl_waits *ws = arg;
	struct tok_client_wait *c = push(ws->c, &ws->nc, &ws->ccap, w, sizeof(*w));

	if (c)
		ws->c = c;
	else
		ws->lost++;
}

/* Copy the waits of this node into @ws (emptied first).  cx->wmu held. */
static void waits_gather(struct cl_ctx *cx, struct cl_waits *ws)
{
	ws->ns = ws->nc = 0;
	ws->lost = 0;
	ws->server = cx->wts != NULL;
	if (cx->wts)
		tok_server_waits(cx->wts, got_server_wait, ws);
	if (cx->tc)
		tok_client_waits(cx->tc, got_client_wait, ws);
}

static void waits_free(struct cl_waits *ws)
{
	free(ws->s);
	free(ws->c);
}

/* ---- 2. text ---------------------------------------------------------------- */

/* Text appended to a buffer; @len counts on past @size, as snprintf does. */
struct cl_out {
	char *buf;
	size_t size, len;
};

static void put(struct cl_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct cl_out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(o->buf + (o->len < o->size ? o->len : o->size),
		      o->len < o->size ? o->size - o->len : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n;
}

/* The inode of token key @key (a byte range's: cl_range.c). */
static uint64_t key_ino(uint64_t key)
{
	uint64_t ino, off, end;

	return cl_range_of(key, &ino, &off, &end) ? ino : key;
}

/*
 * "inode 4711", or a byte range's "inode 4711 bytes [4194304, 8388608)";
 * @json: "ino":4711 and, for a byte range, "range":[4194304,8388608].
 */
static void put_key_as(struct cl_out *o, uint64_t key, bool json)
{
	uint64_t ino, off, end;

	if (!cl_range_of(key, &ino, &off, &end))
		put(o, json ? "\"ino\":%" PRIu64 : "inode %" PRIu64, key);
	else if (json)
		put(o, "\"ino\":%" PRIu64 ",\"range\":[%" PRIu64 ",%" PRIu64 "]", ino, off, end);
	else
		put(o, "inode %" PRIu64 " bytes [%" PRIu64 ", %" PRIu64 ")", ino, off, end);
}

static double secs(uint64_t ms)
{
	return (double)ms / 1000.0;
}

const char *cl_peer_name(struct cl_ctx *cx, uint32_t id)
{
	const struct cms_node *n = cl_node_by_id(cx, id);

	return n ? cms_node_name(n) : "an unknown node";
}

/* "attr:write times:write" */
static void put_levels(struct cl_out *o, const struct tok_set *s)
{
	const char *sep = "";

	for (int t = 0; t < TOK_NTOKENS; t++) {
		if (s->level[t] == TOK_NONE)
			continue;
		put(o, "%s%s:%s", sep, tok_name((enum tok_id)t),
		    tok_level_name((enum tok_level)s->level[t]));
		sep = " ";
	}
}

/* Who asks or holds, as the server knows it. */
static void put_who(struct cl_out *o, struct cl_ctx *cx, const struct tok_who *w)
{
	switch (w->kind) {
	case TOK_WHO_NODE:
		put(o, "%s", cl_peer_name(cx, w->node));
		break;
	case TOK_WHO_OP:
		put(o, "server operation for %s", cl_peer_name(cx, w->node));
		break;
	case TOK_WHO_SERVER:
		put(o, "the existence check of a file that lost its last name");
		break;
	}
}

static bool same_who(const struct tok_who *a, const struct tok_who *b)
{
	return a->kind == b->kind && a->node == b->node && (a->kind != TOK_WHO_OP || a->op == b->op);
}

/* Is @w a wait of @holder: the operation itself, or for a node its own and its operations'? */
static bool waits_of(const struct tok_who *holder, const struct tok_server_wait *w)
{
	if (holder->kind == TOK_WHO_OP)
		return same_who(holder, &w->who);
	return holder->kind == TOK_WHO_NODE && w->who.kind != TOK_WHO_SERVER &&
	       w->who.node == holder->node;
}

/* Each kind of client call: its JSON name and what it does, in a line. */
static const struct {
	const char *json, *text;
} cw_kinds[TOK_CW_NKINDS] = {
	[TOK_CW_ACQUIRE] = { "acquire", "wants" },
	[TOK_CW_LEND]    = { "lend", "lends a server operation" },
	[TOK_CW_RECALL]  = { "recall", "gives back (recalled)" },
	[TOK_CW_FORGET]  = { "forget", "gives back (done with the file)" },
};

/* What a client call waits for: its JSON name and its text; @refs: the references follow. */
static const struct {
	const char *json, *text;
	bool refs;
} cw_fors[TOK_CW_NFOR] = {
	[TOK_CW_SERVER]  = { "server", "waiting for the metadata server's answer", false },
	[TOK_CW_OBTAIN]  = { "obtain", "behind this node's request for the inode in flight", false },
	[TOK_CW_GIVING]  = { "giving_back", "behind this node's give-back of those tokens", false },
	[TOK_CW_BROKEN]  = { "broken_lend", "until the operations those tokens were lent to answer "
			     "(they were given back meanwhile)", false },
	[TOK_CW_CONVERT] = { "convert", "its conversion waits for this node's references on the "
			     "old level:", true },
	[TOK_CW_DRAIN]   = { "drain", "until this node's references go:", true },
	[TOK_CW_DUTIES]  = { "duties", "running the return duties (flush, invalidate)", false },
	[TOK_CW_SEND]    = { "send", "sending them back to the metadata server", false },
	[TOK_CW_LATER]   = { "later", "behind another give-back or this node's request in flight",
			     false },
};

/* A client wait: "inode 4711 gives back (recalled) attr:read: until this node's references go: attr 2". */
static void put_client_wait(struct cl_out *o, struct cl_ctx *cx, const struct tok_client_wait *w)
{
	put_key_as(o, w->ino, false);
	put(o, " %s ", cw_kinds[w->kind].text);
	put_levels(o, &w->want);
	put(o, ": %s", cw_fors[w->what].text);
	for (int t = 0; cw_fors[w->what].refs && t < TOK_NTOKENS; t++)
		if (w->refs[t])
			put(o, " %s %" PRIu32, tok_name((enum tok_id)t), w->refs[t]);
	if (w->what == TOK_CW_SERVER && !cx->is_server) {
		uint32_t id;

		pthread_mutex_lock(&cx->mu);
		id = cx->server_id;
		pthread_mutex_unlock(&cx->mu);
		put(o, " (%s; its log says what that waits for)", cl_peer_name(cx, id));
	}
}

/* Is @w a give-back (a recall, or a file this node is done with)? */
static bool giving_back(const struct tok_client_wait *w)
{
	return w->kind == TOK_CW_RECALL || w->kind == TOK_CW_FORGET;
}

/*
 * What @holder (an obstacle of @self) waits for at this server, from the
 * same snapshot: "; node2 waits for: inode 12 name:read (2.1 s), ...".
 * When it is this node, also what its give-backs of the inode wait for.  A
 * node holding a recalled token that waits for nothing here says so: its
 * trouble is on that node.
 */
static void put_holder_waits(struct cl_out *o, struct cl_ctx *cx, const struct cl_waits *ws,
			     const struct tok_server_wait *self, const struct tok_obstacle *ob)
{
	bool me = ob->who.kind == TOK_WHO_NODE && ob->who.node == cx->self_id;
	unsigned n = 0, here = 0;

	for (size_t i = 0; i < ws->ns; i++) {
		const struct tok_server_wait *w = &ws->s[i];

		if (w == self || !waits_of(&ob->who, w))
			continue;
		if (n == 0) {
			put(o, "; ");
			put_who(o, cx, &ob->who);
			put(o, " waits for: ");
		}
		if (n++ >= CL_WAIT_HOLDER_WAITS)
			continue;
		put(o, "%s", n > 1 ? ", " : "");
		put_key_as(o, w->ino, false);
		put(o, " ");
		put_levels(o, &w->want);
		put(o, "%s (%.1f s)", ob->who.kind == TOK_WHO_NODE && w->who.kind == TOK_WHO_OP ?
			" for its server operation" : "", secs(w->age_ms));
	}
	if (n > CL_WAIT_HOLDER_WAITS)
		put(o, ", and %u more", n - CL_WAIT_HOLDER_WAITS);
	for (size_t i = 0; me && i < ws->nc; i++) {
		if (ws->c[i].ino != self->ino || !giving_back(&ws->c[i]))
			continue;
		put(o, "; this node's give-back: ");
		put_client_wait(o, cx, &ws->c[i]);
		put(o, " (%.1f s)", secs(ws->c[i].age_ms));
		here++;
	}
	if (n == 0 && here == 0 && ob->who.kind == TOK_WHO_NODE && !tok_set_empty(&ob->recalled))
		put(o, "; %s waits for nothing at this server", cl_peer_name(cx, ob->who.node));
}

static void put_obstacle(struct cl_out *o, struct cl_ctx *cx, const struct tok_obstacle *ob)
{
	switch (ob->kind) {
	case TOK_OBST_GRANT:
		put(o, "held by ");
		put_who(o, cx, &ob->who);
		put(o, " ");
		put_levels(o, &ob->levels);
		if (tok_set_empty(&ob->recalled))
			break;
		put(o, " (recall ");
		if (memcmp(&ob->recalled, &ob->levels, sizeof(ob->levels)) != 0) {
			put(o, "of ");
			put_levels(o, &ob->recalled);
			put(o, " ");
		}
		put(o, "sent %.1f s ago, unanswered)", secs(ob->recall_age_ms));
		break;
	case TOK_OBST_QUEUED:
		put(o, "queued behind ");
		put_who(o, cx, &ob->who);
		put(o, ", which asked first for ");
		put_levels(o, &ob->levels);
		break;
	case TOK_OBST_IOEXCL:
		put(o, "telling ");
		put_who(o, cx, &ob->who);
		put(o, " it is no longer the only node doing I/O");
		break;
	case TOK_OBST_FREEING:
		put(o, "the file lost its last name and is being freed");
		break;
	}
}

/*
 * A server wait: "inode 4711 wants attr:write (server operation for
 * node3); held by node2 attr:read (recall sent 7.0 s ago, unanswered);
 * node2 waits for: ...".
 */
static void put_server_wait(struct cl_out *o, struct cl_ctx *cx, const struct cl_waits *ws,
			    const struct tok_server_wait *w)
{
	put_key_as(o, w->ino, false);
	put(o, " wants ");
	put_levels(o, &w->want);
	put(o, " (");
	put_who(o, cx, &w->who);
	put(o, ")");
	for (unsigned i = 0; i < w->nobstacles; i++) {
		put(o, "; ");
		put_obstacle(o, cx, &w->obstacles[i]);
	}
	if (w->more)
		put(o, "; and %u more in its way", w->more);
	if (w->nobstacles == 0)
		put(o, "; nothing in its way any more");
	for (unsigned i = 0; i < w->nobstacles; i++) {
		const struct tok_obstacle *ob = &w->obstacles[i];
		bool seen = false;

		for (unsigned k = 0; k < i; k++)
			seen |= same_who(&w->obstacles[k].who, &ob->who);
		if (!seen && ob->who.kind != TOK_WHO_SERVER)
			put_holder_waits(o, cx, ws, w, ob);
	}
}

/* ---- 3. JSON ------------------------------------------------------------------ */

/* {"attr":"write",...} */
static void put_json_levels(struct cl_out *o, const struct tok_set *s)
{
	const char *sep = "";

	put(o, "{");
	for (int t = 0; t < TOK_NTOKENS; t++) {
		if (s->level[t] == TOK_NONE)
			continue;
		put(o, "%s\"%s\":\"%s\"", sep, tok_name((enum tok_id)t),
		    tok_level_name((enum tok_level)s->level[t]));
		sep = ",";
	}
	put(o, "}");
}

static void put_json_who(struct cl_out *o, struct cl_ctx *cx, const struct tok_who *w)
{
	static const char *const as[] = {
		[TOK_WHO_NODE] = "node", [TOK_WHO_OP] = "operation", [TOK_WHO_SERVER] = "server",
	};

	put(o, "\"by\":\"%s\",\"as\":\"%s\"",
	    w->kind == TOK_WHO_SERVER ? cms_node_name(cx->self) : cl_peer_name(cx, w->node),
	    as[w->kind]);
}

static void put_json_server_wait(struct cl_out *o, struct cl_ctx *cx, const struct cl_waits *ws,
				 const struct tok_server_wait *w)
{
	static const char *const kinds[] = {
		[TOK_OBST_GRANT] = "held", [TOK_OBST_QUEUED] = "queued", [TOK_OBST_IOEXCL] = "ioexcl",
		[TOK_OBST_FREEING] = "freeing",
	};

	put(o, "{");
	put_key_as(o, w->ino, true);
	put(o, ",");
	put_json_who(o, cx, &w->who);
	put(o, ",\"wants\":");
	put_json_levels(o, &w->want);
	put(o, ",\"age_s\":%.1f,\"obstacles\":[", secs(w->age_ms));
	for (unsigned i = 0; i < w->nobstacles; i++) {
		const struct tok_obstacle *ob = &w->obstacles[i];

		put(o, "%s{\"kind\":\"%s\",", i ? "," : "", kinds[ob->kind]);
		put_json_who(o, cx, &ob->who);
		put(o, ",\"levels\":");
		put_json_levels(o, &ob->levels);
		if (!tok_set_empty(&ob->recalled)) {
			put(o, ",\"recalled\":");
			put_json_levels(o, &ob->recalled);
			put(o, ",\"recall_age_s\":%.1f", secs(ob->recall_age_ms));
		}
		put(o, "}");
	}
	put(o, "],\"obstacles_left_out\":%u,\"text\":\"", w->more);
	put_server_wait(o, cx, ws, w);
	put(o, "\"}");
}

static void put_json_client_wait(struct cl_out *o, struct cl_ctx *cx,
				 const struct tok_client_wait *w)
{
	const char *sep = "";

	put(o, "{");
	put_key_as(o, w->ino, true);
	put(o, ",\"call\":\"%s\",\"for\":\"%s\",\"wants\":", cw_kinds[w->kind].json,
	    cw_fors[w->what].json);
	put_json_levels(o, &w->want);
	put(o, ",\"age_s\":%.1f,\"refs\":{", secs(w->age_ms));
	for (int t = 0; t < TOK_NTOKENS; t++) {
		if (!w->refs[t])
			continue;
		put(o, "%s\"%s\":%" PRIu32, sep, tok_name((enum tok_id)t), w->refs[t]);
		sep = ",";
	}
	put(o, "},\"text\":\"");
	put_client_wait(o, cx, w);
	put(o, "\"}");
}

/*
 * One wait was written from @before on: keep it if room is left for what
 * closes the object, else take it back and count it as left out.
 */
static bool keep(struct cl_out *o, size_t before, unsigned *left_out)
{
	if (o->len + CL_WAIT_JSON_TAIL <= o->size)
		return true;
	o->len = before;
	(*left_out)++;
	return false;
}

int cl_waits_json(struct cl_ctx *cx, uint64_t ino, char *buf, size_t size, size_t *len,
		  size_t reserve)
{
	struct cl_waits ws = { 0 };
	struct cl_out o = { buf, size > reserve ? size - reserve : 0, *len };
	unsigned left_out;
	const char *sep;
	size_t before;

	pthread_mutex_lock(&cx->wmu);
	waits_gather(cx, &ws);
	pthread_mutex_unlock(&cx->wmu);
	left_out = ws.lost;
	put(&o, "\"waits\":{");
	if (ws.server) {
		put(&o, "\"server\":[");
		sep = "";
		for (size_t i = 0; i < ws.ns; i++) {
			if (ino && key_ino(ws.s[i].ino) != ino)
				continue;
			before = o.len;
			put(&o, "%s", sep);
			put_json_server_wait(&o, cx, &ws, &ws.s[i]);
			if (keep(&o, before, &left_out))
				sep = ",";
		}
		put(&o, "],");
	}
	put(&o, "\"client\":[");
	sep = "";
	for (size_t i = 0; i < ws.nc; i++) {
		if (ino && key_ino(ws.c[i].ino) != ino)
			continue;
		before = o.len;
		put(&o, "%s", sep);
		put_json_client_wait(&o, cx, &ws.c[i]);
		if (keep(&o, before, &left_out))
			sep = ",";
	}
	put(&o, "],\"left_out\":%u}", left_out);
	waits_free(&ws);
	*len = o.len;
	return o.len < o.size ? 0 : -ENOSPC;
}

/* ---- 4. the watchdog ------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Is a line due for a wait @age ms old, @dt ms older than at the previous
 * check?  At T, 6T, 24T, then every 120T.
 */
static bool wait_due(uint64_t age, uint64_t dt, uint64_t t)
{
	static const unsigned steps[] = { 1, 6, 24 };
	uint64_t prev = age > dt ? age - dt : 0, every = 120 * t;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		if (prev < steps[i] * t && steps[i] * t <= age)
			return true;
	return age >= every && prev / every != age / every;
}

static void log_line(struct cl_ctx *cx, uint64_t age, const struct cl_waits *ws,
		     const struct tok_server_wait *sw, const struct tok_client_wait *cw)
{
	char line[CL_WAIT_LINE_MAX];
	struct cl_out o = { line, sizeof(line) - 4, 0 };

	if (sw)
		put_server_wait(&o, cx, ws, sw);
	else
		put_client_wait(&o, cx, cw);
	if (o.len >= o.size)
		strcpy(line + o.size - 1, "...");
	fprintf(stderr, "cxfsd: token wait %.1f s: %s\n", secs(age), line);
}

/* Log the waits of @ws a line is due for. */
static void waits_log(struct cl_ctx *cx, const struct cl_waits *ws, uint64_t dt, uint64_t t)
{
	for (size_t i = 0; i < ws->ns; i++)
		if (wait_due(ws->s[i].age_ms, dt, t))
			log_line(cx, ws->s[i].age_ms, ws, &ws->s[i], NULL);
	for (size_t i = 0; i < ws->nc; i++) {
		/* On the MDS its server's line for this request says more. */
		if (ws->server && ws->c[i].what == TOK_CW_SERVER)
			continue;
		if (wait_due(ws->c[i].age_ms, dt, t))
			log_line(cx, ws->c[i].age_ms, ws, NULL, &ws->c[i]);
	}
	if (ws->lost)
		fprintf(stderr, "cxfsd: token waits: %u not checked (out of memory)\n", ws->lost);
}

static void *watchdog(void *arg)
{
	struct cl_ctx *cx = arg;
	struct cl_waits ws = { 0 };
	int64_t last = now_ms(), now;
	struct timespec until;
	unsigned t;

	pthread_mutex_lock(&cx->wmu);
	while (!cx->wstop) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += CL_WAIT_CHECK_MS / 1000;
		pthread_cond_timedwait(&cx->wcv, &cx->wmu, &until);
		now = now_ms();
		t = atomic_load(&cx->wait_log_ms);
		if (cx->wstop || !t) {
			last = now;
			continue;
		}
		waits_gather(cx, &ws);
		pthread_mutex_unlock(&cx->wmu);
		waits_log(cx, &ws, (uint64_t)(now - last), t);
		last = now;
		pthread_mutex_lock(&cx->wmu);
	}
	pthread_mutex_unlock(&cx->wmu);
	waits_free(&ws);
	return NULL;
}

int cl_waits_init(struct cl_ctx *cx)
{
	pthread_condattr_t ca;
	int rc;

	atomic_init(&cx->wait_log_ms, CL_WAIT_LOG_MS_DEFAULT);
	rc = pthread_mutex_init(&cx->wmu, NULL);
	if (rc)
		return -rc;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&cx->wcv, &ca);
	pthread_condattr_destroy(&ca);
	if (rc) {
		pthread_mutex_destroy(&cx->wmu);
		return -rc;
	}
	return 0;
}

void cl_waits_fini(struct cl_ctx *cx)
{
	cl_watchdog_stop(cx);
	pthread_cond_destroy(&cx->wcv);
	pthread_mutex_destroy(&cx->wmu);
}

void cl_waits_server(struct cl_ctx *cx, struct tok_server *ts)
{
	pthread_mutex_lock(&cx->wmu);
	cx->wts = ts;
	pthread_mutex_unlock(&cx->wmu);
}

int cl_watchdog_start(struct cl_ctx *cx)
{
	int rc;

	pthread_mutex_lock(&cx->wmu);
	cx->wstop = false;
	rc = cx->wstarted ? 0 : -pthread_create(&cx->watchdog, NULL, watchdog, cx);
	if (!rc)
		cx->wstarted = true;
	pthread_mutex_unlock(&cx->wmu);
	return rc;
}

void cl_watchdog_stop(struct cl_ctx *cx)
{
	bool started;

	pthread_mutex_lock(&cx->wmu);
	started = cx->wstarted;
	cx->wstop = true;
	cx->wstarted = false;
	pthread_cond_signal(&cx->wcv);
	pthread_mutex_unlock(&cx->wmu);
	if (started)
		pthread_join(cx->watchdog, NULL);
}

void cl_set_wait_log(struct cl_ctx *cx, unsigned seconds)
{
	/* Kept in milliseconds in 32 bits: 30 days at most. */
	if (seconds > 30u * 86400)
		seconds = 30u * 86400;
	atomic_store(&cx->wait_log_ms, seconds * 1000u);
}
