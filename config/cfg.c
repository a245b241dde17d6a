/* SPDX-License-Identifier: ISC */
/*
 * The generic half of the config loader: libyaml events become a small
 * tree that remembers where each node was written (cfg_value.c turns its
 * scalars into typed values).  Every error names FILE:LINE:COL, quotes
 * the offending value and says what to do.  Anchors, aliases and tags are
 * refused, so a config is always a plain tree (no billion laughs), and
 * duplicate keys are caught here.  Nothing here logs, and nothing exits:
 * a reload that runs out of memory fails, and the daemon keeps running
 * on its old config.
 */

#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "cfg_tree.h"
#include "log.h"

#define CFG_DEPTH_MAX	32	/* nesting; the schemas need 4 */
#define CFG_ESC_MAX	80	/* bytes of a quoted value in messages */

static int	 doc_error_at(struct cfg_doc *, unsigned, unsigned,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
static void	 doc_verror(struct cfg_doc *, unsigned, unsigned,
		    const char *, va_list) __attribute__((format(printf, 4, 0)));
static int	 doc_syntax_error(struct cfg_doc *, yaml_parser_t *,
		    const char *, size_t);
static int	 doc_next(struct cfg_doc *, yaml_parser_t *, yaml_event_t *,
		    const char *, size_t);
static int	 doc_build(struct cfg_doc *, yaml_parser_t *, yaml_event_t *,
		    int, const char *, size_t, struct cfg_node **);
static int	 doc_map_dups(struct cfg_doc *, const struct cfg_node *);
static struct cfg_node *node_new(struct cfg_doc *, enum cfg_node_type,
		    const yaml_mark_t *);
static int	 node_add(struct cfg_doc *, struct cfg_node *, size_t *,
		    struct cfg_node *);
static void	 node_free(struct cfg_node *);
static char	*escape(char *, size_t, const char *, size_t);
static int	 dup_cmp(const void *, const void *);

int
cfg_doc_parse(struct cfg_doc *d, const char *file, const char *text,
    size_t len, char *err, size_t errlen)
{
	yaml_parser_t	 p;
	yaml_event_t	 ev;
	int		 rc = -1;

	memset(d, 0, sizeof(*d));
	d->file = file != NULL ? file : "<config>";
	d->err = err;
	d->errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	if (!yaml_parser_initialize(&p))
		return doc_error_at(d, 0, 0, "libyaml failed to initialise");
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);

	if (doc_next(d, &p, &ev, text, len) == -1)
		goto out;
	yaml_event_delete(&ev);		/* STREAM-START */
	if (doc_next(d, &p, &ev, text, len) == -1)
		goto out;
	if (ev.type == YAML_STREAM_END_EVENT) {
		yaml_event_delete(&ev);
		doc_error_at(d, 1, 1, "empty configuration (start from "
		    "config/examples/)");
		goto out;
	}
	yaml_event_delete(&ev);		/* DOCUMENT-START */
	if (doc_next(d, &p, &ev, text, len) == -1)
		goto out;
	rc = doc_build(d, &p, &ev, 0, text, len, &d->root);
	yaml_event_delete(&ev);
	if (rc == -1)
		goto out;
	rc = -1;
	if (doc_next(d, &p, &ev, text, len) == -1)
		goto out;
	yaml_event_delete(&ev);		/* DOCUMENT-END */
	if (doc_next(d, &p, &ev, text, len) == -1)
		goto out;
	if (ev.type != YAML_STREAM_END_EVENT) {
		doc_error_at(d, ev.start_mark.line + 1,
		    ev.start_mark.column + 1, "a second YAML document "
		    "(remove the '---' line: one file holds one config)");
		yaml_event_delete(&ev);
		goto out;
	}
	yaml_event_delete(&ev);

	if (d->root->type == CFG_NODE_SCALAR && d->root->isnull)
		doc_error_at(d, 1, 1, "empty configuration (start from "
		    "config/examples/)");
	else if (d->root->type == CFG_NODE_SCALAR)
		cfg_bad(d, d->root, "top level", "expected a mapping, got a "
		    "string", "a config is 'key: value' lines, see "
		    "config/examples/");
	else if (d->root->type == CFG_NODE_SEQ)
		cfg_error(d, d->root, "top level: expected a mapping, got a "
		    "sequence (a config is 'key: value' lines, see "
		    "config/examples/)");
	else
		rc = 0;
out:
	yaml_parser_delete(&p);
	if (rc == -1) {
		node_free(d->root);
		d->root = NULL;
	}
	return rc;
}

void
cfg_doc_clear(struct cfg_doc *d)
{
	node_free(d->root);
	d->root = NULL;
}

char *
cfg_read_file(const char *path, size_t *lenp, char *err, size_t errlen)
{
	struct stat	 st;
	char		*buf;
	size_t		 len = 0;
	ssize_t		 r;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: is a directory (expected a YAML "
		    "config file)", path);
		close(fd);
		return NULL;
	}
	if (S_ISREG(st.st_mode) && st.st_size > (off_t)CFG_FILE_MAX)
		goto toobig;
	if ((buf = malloc(CFG_FILE_MAX + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		close(fd);
		return NULL;
	}
	/* Read one byte past the cap to notice a file that grew. */
	for (;;) {
		r = read(fd, buf + len, CFG_FILE_MAX + 1 - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return NULL;
		}
		if (r == 0)
			break;
		len += r;
		if (len > CFG_FILE_MAX) {
			free(buf);
			goto toobig;
		}
	}
	close(fd);
	*lenp = len;
	return buf;
toobig:
	snprintf(err, errlen, "%s: file too large (a config holds at most "
	    "1MiB)", path);
	close(fd);
	return NULL;
}

void *
cfg_alloc(struct cfg_doc *d, size_t nmemb, size_t size)
{
	void	*p;

	if ((p = calloc(nmemb != 0 ? nmemb : 1, size != 0 ? size : 1)) ==
	    NULL)
		cfg_nomem(d);
	return p;
}

char *
cfg_strdup(struct cfg_doc *d, const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL)
		cfg_nomem(d);
	return p;
}

int
cfg_nomem(struct cfg_doc *d)
{
	return cfg_error(d, NULL, "out of memory");
}

int
cfg_error(struct cfg_doc *d, const struct cfg_node *n, const char *fmt, ...)
{
	va_list	 ap;

	/* A node's line is 1-based: 0 is "no position". */
	va_start(ap, fmt);
	doc_verror(d, n != NULL ? n->line : 0, n != NULL ? n->col : 0, fmt,
	    ap);
	va_end(ap);
	return -1;
}

int
cfg_bad(struct cfg_doc *d, const struct cfg_node *n, const char *what,
    const char *problem, const char *hint, ...)
{
	char	 v[CFG_ESC_MAX * 4 + 8], h[512];
	va_list	 ap;

	escape(v, sizeof(v), n->str != NULL ? n->str : "", n->len);
	if (hint == NULL)
		return cfg_error(d, n, "%s: %s: '%s'", what, problem, v);
	va_start(ap, hint);
	vsnprintf(h, sizeof(h), hint, ap);
	va_end(ap);
	return cfg_error(d, n, "%s: %s: '%s' (%s)", what, problem, v, h);
}

struct cfg_node *
cfg_map_get(const struct cfg_node *map, const char *key)
{
	size_t	i;

	for (i = 0; i + 1 < map->nkids; i += 2)
		if (strcmp(map->kids[i]->str, key) == 0)
			return map->kids[i + 1];
	return NULL;
}

int
cfg_dup_find(struct cfg_doc *d, const struct cfg_dup *ents, size_t n,
    size_t *first, size_t *dup)
{
	struct cfg_dup	*s;
	size_t		 i, g;
	int		 found = 0;

	if (n < 2)
		return 0;
	if ((s = cfg_alloc(d, n, sizeof(*s))) == NULL)
		return -1;
	memcpy(s, ents, n * sizeof(*s));
	qsort(s, n, sizeof(*s), dup_cmp);
	/* In each run of equal keys the second entry is the first repeat. */
	for (g = 0; g < n; g = i) {
		for (i = g + 1; i < n && s[i].len == s[g].len &&
		    memcmp(s[i].key, s[g].key, s[g].len) == 0; i++)
			;
		if (i - g < 2 || (found && s[g + 1].order >= *dup))
			continue;
		*first = s[g].order;
		*dup = s[g + 1].order;
		found = 1;
	}
	free(s);
	return found;
}

void
cfg_dup_set(struct cfg_dup *e, size_t order, const void *key, size_t len)
{
	e->key = key;
	e->len = len;
	e->order = order;
}

int
cfg_seq_dups(struct cfg_doc *d, const struct cfg_node *seq,
    const struct cfg_dup *ents, size_t n, const char *list, const char *key,
    const char *problem, const char *hint)
{
	char	f[80];
	size_t	first, dup;
	int	found;

	if ((found = cfg_dup_find(d, ents, n, &first, &dup)) != 1)
		return found;
	snprintf(f, sizeof(f), "%s[%zu].%s", list, dup, key);
	return cfg_bad(d, cfg_map_get(seq->kids[dup], key), f, problem,
	    "first at line %u; %s", cfg_map_get(seq->kids[first], key)->line,
	    hint);
}

static int
doc_error_at(struct cfg_doc *d, unsigned line, unsigned col,
    const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	doc_verror(d, line, col, fmt, ap);
	va_end(ap);
	return -1;
}

/* "file:line:col: message", or "file: message" when line is 0. */
static void
doc_verror(struct cfg_doc *d, unsigned line, unsigned col, const char *fmt,
    va_list ap)
{
	int	o;

	if (d->err == NULL || d->errlen == 0)
		return;
	if (line > 0)
		o = snprintf(d->err, d->errlen, "%s:%u:%u: ", d->file, line,
		    col);
	else
		o = snprintf(d->err, d->errlen, "%s: ", d->file);
	if (o < 0 || (size_t)o >= d->errlen)
		return;
	vsnprintf(d->err + o, d->errlen - o, fmt, ap);
}

/* libyaml's own problem text, at its (0-based) mark. */
static int
doc_syntax_error(struct cfg_doc *d, yaml_parser_t *p, const char *text,
    size_t len)
{
	const char	*problem;
	unsigned	 line = 1, col = 1;
	size_t		 i;

	problem = p->problem != NULL ? p->problem : "unknown error";
	switch (p->error) {
	case YAML_MEMORY_ERROR:
		return doc_error_at(d, 0, 0, "out of memory reading YAML");
	case YAML_READER_ERROR:
		/* Reader errors carry a byte offset, not a mark. */
		for (i = 0; i < p->problem_offset && i < len; i++) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else
				col++;
		}
		if (p->problem_value != -1)
			return doc_error_at(d, line, col, "YAML syntax error: "
			    "%s: '\\x%02x' (a config must be UTF-8 text)",
			    problem, (unsigned)p->problem_value & 0xff);
		return doc_error_at(d, line, col, "YAML syntax error: %s "
		    "(a config must be UTF-8 text)", problem);
	default:
		break;
	}
	if (p->context != NULL)
		return doc_error_at(d, p->problem_mark.line + 1,
		    p->problem_mark.column + 1, "YAML syntax error: %s (%s "
		    "at line %zu column %zu; check indentation and quoting)",
		    problem, p->context, p->context_mark.line + 1,
		    p->context_mark.column + 1);
	return doc_error_at(d, p->problem_mark.line + 1,
	    p->problem_mark.column + 1, "YAML syntax error: %s (check "
	    "indentation and quoting)", problem);
}

static int
doc_next(struct cfg_doc *d, yaml_parser_t *p, yaml_event_t *ev,
    const char *text, size_t len)
{
	if (yaml_parser_parse(p, ev))
		return 0;
	return doc_syntax_error(d, p, text, len);
}

/* Build the node that starts with ev; the caller deletes ev. */
static int
doc_build(struct cfg_doc *d, yaml_parser_t *p, yaml_event_t *ev, int depth,
    const char *text, size_t len, struct cfg_node **out)
{
	struct cfg_node		*n, *kid;
	yaml_event_t		 kev;
	yaml_event_type_t	 endtype;
	const yaml_char_t	*anchor, *tag;
	const char		*v;
	char			 q[CFG_ESC_MAX * 4 + 8];
	size_t			 cap = 0;
	int			 rc;

	*out = NULL;
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
		break;
	case YAML_ALIAS_EVENT:
		v = (const char *)ev->data.alias.anchor;
		return doc_error_at(d, ev->start_mark.line + 1,
		    ev->start_mark.column + 1, "YAML alias not allowed: "
		    "'*%s' (write the value out in full)",
		    escape(q, sizeof(q), v, strlen(v)));
	default:
		return doc_error_at(d, ev->start_mark.line + 1,
		    ev->start_mark.column + 1, "unexpected YAML structure");
	}
	/* Tags may carry %-escaped bytes: quote both before printing. */
	if (anchor != NULL) {
		v = (const char *)anchor;
		return doc_error_at(d, ev->start_mark.line + 1,
		    ev->start_mark.column + 1, "YAML anchor not allowed: "
		    "'&%s' (anchors and aliases are not supported; write "
		    "values out in full)", escape(q, sizeof(q), v, strlen(v)));
	}
	if (tag != NULL) {
		v = (const char *)tag;
		return doc_error_at(d, ev->start_mark.line + 1,
		    ev->start_mark.column + 1, "YAML tag not allowed: '%s' "
		    "(remove it)", escape(q, sizeof(q), v, strlen(v)));
	}

	if (ev->type == YAML_SCALAR_EVENT) {
		if ((n = node_new(d, CFG_NODE_SCALAR, &ev->start_mark)) ==
		    NULL)
			return -1;
		*out = n;
		n->len = ev->data.scalar.length;
		if ((n->str = malloc(n->len + 1)) == NULL)
			return cfg_nomem(d);
		memcpy(n->str, ev->data.scalar.value, n->len);
		n->str[n->len] = '\0';
		if (memchr(n->str, '\0', n->len) != NULL)
			return cfg_error(d, n, "NUL character in a string "
			    "(remove the \\0 escape)");
		v = n->str;
		n->isnull = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		    (n->len == 0 || strcmp(v, "~") == 0 ||
		    strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
		    strcmp(v, "NULL") == 0);
		return 0;
	}

	if (depth >= CFG_DEPTH_MAX)
		return doc_error_at(d, ev->start_mark.line + 1,
		    ev->start_mark.column + 1, "nesting too deep (a config "
		    "needs at most 4 levels)");
	if (ev->type == YAML_SEQUENCE_START_EVENT) {
		n = node_new(d, CFG_NODE_SEQ, &ev->start_mark);
		endtype = YAML_SEQUENCE_END_EVENT;
	} else {
		n = node_new(d, CFG_NODE_MAP, &ev->start_mark);
		endtype = YAML_MAPPING_END_EVENT;
	}
	if ((*out = n) == NULL)
		return -1;
	for (;;) {
		if (doc_next(d, p, &kev, text, len) == -1)
			return -1;
		if (kev.type == endtype) {
			yaml_event_delete(&kev);
			break;
		}
		rc = doc_build(d, p, &kev, depth + 1, text, len, &kid);
		yaml_event_delete(&kev);
		if (kid != NULL && node_add(d, n, &cap, kid) == -1) {
			node_free(kid);
			return -1;
		}
		if (rc == -1)
			return -1;
		if (n->type == CFG_NODE_MAP && n->nkids % 2 == 1 &&
		    (kid->type != CFG_NODE_SCALAR || kid->isnull))
			return cfg_error(d, kid, "mapping key must be a "
			    "string (write 'name: value')");
	}
	if (n->type == CFG_NODE_MAP)
		return doc_map_dups(d, n);
	return 0;
}

static int
doc_map_dups(struct cfg_doc *d, const struct cfg_node *map)
{
	struct cfg_dup	*ents;
	struct cfg_node	*k;
	size_t		 i, n = map->nkids / 2, first, dup;
	int		 found;

	if (n < 2)
		return 0;
	if ((ents = cfg_alloc(d, n, sizeof(*ents))) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		cfg_dup_set(&ents[i], i, map->kids[2 * i]->str,
		    map->kids[2 * i]->len);
	found = cfg_dup_find(d, ents, n, &first, &dup);
	free(ents);
	if (found != 1)
		return found;
	k = map->kids[2 * dup];
	return cfg_bad(d, k, "mapping", "duplicate key",
	    "first at line %u; keep one", map->kids[2 * first]->line);
}

static struct cfg_node *
node_new(struct cfg_doc *d, enum cfg_node_type type, const yaml_mark_t *m)
{
	struct cfg_node	*n;

	if ((n = cfg_alloc(d, 1, sizeof(*n))) == NULL)
		return NULL;
	n->type = type;
	n->line = m->line + 1;
	n->col = m->column + 1;
	return n;
}

static int
node_add(struct cfg_doc *d, struct cfg_node *n, size_t *cap,
    struct cfg_node *kid)
{
	struct cfg_node	**kids;
	size_t		  ncap;

	if (n->nkids == *cap) {
		/* At most CFG_FILE_MAX nodes: no overflow. */
		ncap = *cap == 0 ? 8 : *cap * 2;
		if ((kids = realloc(n->kids, ncap * sizeof(*kids))) == NULL)
			return cfg_nomem(d);
		n->kids = kids;
		*cap = ncap;
	}
	n->kids[n->nkids++] = kid;
	return 0;
}

static void
node_free(struct cfg_node *n)
{
	size_t	i;

	if (n == NULL)
		return;
	for (i = 0; i < n->nkids; i++)
		node_free(n->kids[i]);
	free(n->kids);
	free(n->str);
	free(n);
}



/* Quote untrusted text for a message: log_escape, cut at CFG_ESC_MAX. */
static char *
escape(char *dst, size_t dstlen, const char *s, size_t len)
{
	log_escape(dst, dstlen - 3, s, len < CFG_ESC_MAX ? len : CFG_ESC_MAX);
	if (len > CFG_ESC_MAX)
		memcpy(dst + strlen(dst), "...", 4);	/* room kept above */
	return dst;
}

static int
dup_cmp(const void *a, const void *b)
{
	const struct cfg_dup	*x = a, *y = b;
	size_t			 l = x->len < y->len ? x->len : y->len;
	int			 c;

	if ((c = memcmp(x->key, y->key, l)) != 0)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

