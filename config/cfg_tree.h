/*
 * cfg_tree.h: the YAML tree and typed getters shared by the gateway and
 * agent schemas.  Internal to config/; callers use cfg.h.
 */
#ifndef PORCH_CFG_TREE_H
#define PORCH_CFG_TREE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct cfg_listen;

enum cfg_node_type {
	CFG_NODE_SCALAR,
	CFG_NODE_SEQ,
	CFG_NODE_MAP,
};

/* One YAML node.  A mapping keeps key, value, key, value... in kids. */
struct cfg_node {
	enum cfg_node_type	 type;
	unsigned		 line;		/* 1-based */
	unsigned		 col;		/* 1-based */
	char			*str;		/* scalar, NUL-terminated */
	size_t			 len;
	int			 isnull;	/* plain "", "~" or "null" */
	struct cfg_node		**kids;
	size_t			 nkids;
};

/* A parsed document and where its first error goes. */
struct cfg_doc {
	const char	*file;
	const char	*base;		/* relative paths start from its
					   directory; NULL: taken as is */
	struct cfg_node	*root;
	char		*err;
	size_t		 errlen;
};

/*
 * A section of a schema is a table of its keys, in the order they are
 * listed in "allowed: ..." messages and checked; cfg_walk() applies it.
 */
enum cfg_type {
	CFG_T_END = 0,		/* ends a table */
	CFG_T_DURATION,		/* unsigned ms: 500ms, 5s, 2m, 1h */
	CFG_T_UINT,		/* unsigned */
	CFG_T_SIZE,		/* size_t: bytes, KiB, MiB */
	CFG_T_BOOL,		/* int: true or false */
	CFG_T_TEXT,		/* char *: a printable line, 1-1024 bytes */
	CFG_T_PATH,		/* char *: a file, relative to d->base */
	CFG_T_LABEL,		/* char *: a name for logs */
	CFG_T_HOSTNAME,		/* char *: normalized, may be "*.x" */
	CFG_T_SERVER_NAME,	/* char *: a name to send as TLS SNI */
	CFG_T_PUBKEY,		/* uint8_t[KEY_PUB_LEN] */
	CFG_T_BACKEND,		/* char *: host:port, kept as written */
	CFG_T_LISTEN,		/* struct cfg_listen * and its count */
	CFG_T_ENUM,		/* an enum: the index of its name in en */
	CFG_T_SECTION,		/* a mapping: sub, then fn, on the same
				   struct; absent: sub's defaults */
	CFG_T_FUNC,		/* fn, called with the node or NULL */
	CFG_T_OTHER,		/* allowed; another key's fn reads it */
	CFG_T_CHECK,		/* no key: fn checks the section here */
};

/*
 * The names of an enum's values by value (NULL: no name takes it), and
 * the problem and hint for any other word: "unknown policy", "use ...".
 */
struct cfg_enum {
	const char *const	*names;
	size_t			 n;
	const char		*problem;
	const char		*hint;
};

/*
 * One row: off is the field's offset (cnt its count's, for a list), min,
 * max and def bound and default a number, need is the hint when the key
 * is required, sub a section's rows, en an enum's names, fn a row's own
 * code.
 */
struct cfg_key {
	const char		*name;
	enum cfg_type		 type;
	size_t			 off;
	size_t			 cnt;
	unsigned long long	 min, max;
	unsigned long long	 def;
	const char		*need;
	const struct cfg_key	*sub;
	const struct cfg_enum	*en;
	int			(*fn)(struct cfg_doc *,
				    const struct cfg_node *map,
				    struct cfg_node *, const char *what,
				    void *obj);
};

/* Table rows; the including file defines CFG_OBJ, the struct filled. */
#define CFG_KEY(k, t, f, lo, hi, def) \
	{ (k), (t), offsetof(CFG_OBJ, f), 0, (lo), (hi), (def), NULL, NULL, \
	    NULL, NULL }
#define CFG_NEED(k, t, f, need) \
	{ (k), (t), offsetof(CFG_OBJ, f), 0, 0, 0, 0, (need), NULL, NULL, \
	    NULL }
#define CFG_LIST(k, f, nf) \
	{ (k), CFG_T_LISTEN, offsetof(CFG_OBJ, f), offsetof(CFG_OBJ, nf), \
	    0, 0, 0, NULL, NULL, NULL, NULL }
/* An enum field, which must have the size of an int. */
#define CFG_ENUM(k, f, en, need) \
	{ (k), CFG_T_ENUM, offsetof(CFG_OBJ, f) + 0 * sizeof(char[ \
	    sizeof(((CFG_OBJ *)0)->f) == sizeof(int) ? 1 : -1]), 0, 0, 0, \
	    0, (need), NULL, (en), NULL }
#define CFG_SECTION(k, sub, fn, need) \
	{ (k), CFG_T_SECTION, 0, 0, 0, 0, 0, (need), (sub), NULL, (fn) }
#define CFG_FUNC(k, fn, need) \
	{ (k), CFG_T_FUNC, 0, 0, 0, 0, 0, (need), NULL, NULL, (fn) }
#define CFG_OTHER(k) \
	{ (k), CFG_T_OTHER, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL }
#define CFG_CHECK(fn) \
	{ NULL, CFG_T_CHECK, 0, 0, 0, 0, 0, NULL, NULL, NULL, (fn) }
#define CFG_END \
	{ NULL, CFG_T_END, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL }

/* One entry for the duplicate finder; order is the entry's index. */
struct cfg_dup {
	const void	*key;
	size_t		 len;
	size_t		 order;
};

#define CFG_MS_MIN	1U
#define CFG_MS_MAX	(60U * 60U * 1000U)
#define CFG_KIB		1024U
#define CFG_MIB		(1024U * 1024U)
#define CFG_FILE_MAX	CFG_MIB

/*
 * Parse text into d->root.  Rejects syntax errors, anchors, aliases,
 * tags, several documents, duplicate keys, empty input and a top level
 * that is not a mapping.  Returns 0, or -1 with the error in d->err.
 */
int		 cfg_doc_parse(struct cfg_doc *, const char *file,
		    const char *text, size_t len, char *err, size_t errlen);
void		 cfg_doc_clear(struct cfg_doc *);

/*
 * Read a whole file of at most CFG_FILE_MAX bytes.  Caller frees; NULL
 * with the reason in err (out of memory included).
 */
char		*cfg_read_file(const char *path, size_t *len, char *err,
		    size_t errlen);

/*
 * Allocation for the loader, which runs on reload too and so must not
 * exit: NULL after writing "file: out of memory" into d's error.
 * cfg_alloc zeroes; a zero count is taken as one.
 */
void		*cfg_alloc(struct cfg_doc *, size_t, size_t);
char		*cfg_strdup(struct cfg_doc *, const char *);
int		 cfg_nomem(struct cfg_doc *);

/*
 * Walk map (a section written as what; NULL: the top level) with a key
 * table into obj: unknown keys, then each row in table order: a key's
 * default, whether it is required, its value; a check row's fn, which
 * gets the section as map and NULL as node.  map NULL (the section is
 * absent) sets only the defaults.  Returns 0, or -1 with the first error.
 */
int		 cfg_walk(struct cfg_doc *, const struct cfg_node *map,
		    const char *what, const struct cfg_key *, void *obj);
/*
 * An optional section of root (acme:, dns:) walked into a new zeroed
 * object of size bytes: NULL with *rc 0 when the section is absent,
 * NULL with *rc -1 on an error, else the object (the caller's).
 */
void		*cfg_walk_new(struct cfg_doc *, const struct cfg_node *root,
		    const char *name, size_t size, const struct cfg_key *,
		    int *rc);
/*
 * cfg_walk each map of the sequence seq (written as what) into items,
 * room for seq->nkids objects of sz bytes each; item i is "what[i]" in
 * messages.  *n counts the items begun, so that the caller's free sees
 * a half-filled one.  Returns 0, or -1 with the first error.
 */
int		 cfg_walk_seq(struct cfg_doc *, const struct cfg_node *seq,
		    const char *what, const struct cfg_key *, void *items,
		    size_t sz, size_t *n);

/* Errors: all return -1 so that callers can "return cfg_error(...)". */
int		 cfg_error(struct cfg_doc *, const struct cfg_node *,
		    const char *, ...) __attribute__((format(printf, 3, 4)));
int		 cfg_bad(struct cfg_doc *, const struct cfg_node *,
		    const char *what, const char *problem, const char *hint,
		    ...) __attribute__((format(printf, 5, 6)));

/* Mapping access. */
struct cfg_node	*cfg_map_get(const struct cfg_node *, const char *key);

/* Type checks. */
int		 cfg_expect_map(struct cfg_doc *, const struct cfg_node *,
		    const char *what);
int		 cfg_expect_seq(struct cfg_doc *, const struct cfg_node *,
		    const char *what);
int		 cfg_expect_list(struct cfg_doc *, const struct cfg_node *,
		    const char *what);
size_t		 cfg_list_len(const struct cfg_node *);
struct cfg_node	*cfg_list_item(struct cfg_node *, size_t);

/* Typed values; what names the field in messages. */
int		 cfg_string(struct cfg_doc *, const struct cfg_node *,
		    const char *what, const char **);
int		 cfg_uint(struct cfg_doc *, const struct cfg_node *,
		    const char *what, unsigned min, unsigned max, unsigned *);
int		 cfg_duration(struct cfg_doc *, const struct cfg_node *,
		    const char *what, unsigned min, unsigned max, unsigned *);
int		 cfg_size(struct cfg_doc *, const struct cfg_node *,
		    const char *what, size_t min, size_t max, size_t *);
int		 cfg_label(struct cfg_doc *, const struct cfg_node *,
		    const char *what, char **);
int		 cfg_pubkey(struct cfg_doc *, const struct cfg_node *,
		    const char *what, uint8_t *);
int		 cfg_hostname(struct cfg_doc *, const struct cfg_node *,
		    const char *what, char **);
int		 cfg_server_name(struct cfg_doc *, const struct cfg_node *,
		    const char *what, char **);
int		 cfg_hostport(struct cfg_doc *, const struct cfg_node *,
		    const char *what, char **host, unsigned *port);
/* A host:port kept as written in *address, and split. */
int		 cfg_address(struct cfg_doc *, const struct cfg_node *,
		    const char *what, char **address, char **host,
		    unsigned *port);
/* A backend's host:port, kept as written. */
int		 cfg_backend(struct cfg_doc *, const struct cfg_node *,
		    const char *what, char **);
int		 cfg_text(struct cfg_doc *, const struct cfg_node *,
		    const char *what, char **);
/* The index of one of en's names into *out. */
int		 cfg_enum(struct cfg_doc *, const struct cfg_node *,
		    const char *what, const struct cfg_enum *, int *out);

/*
 * One numeric listen address ("0.0.0.0:443", "[::]:443") into l, whose
 * text the caller frees (cfg_listen_free frees an array of them).
 * example ends the hint: "'0.0.0.0:443' or '[::]:443'".
 */
int		 cfg_listen_addr(struct cfg_doc *, const struct cfg_node *,
		    const char *what, const char *example, struct cfg_listen *);
void		 cfg_listen_free(struct cfg_listen *, size_t);

/*
 * The top-level "admin" address (into *out, allocated; NULL when absent)
 * and "admin_public": an address other than loopback is an error unless
 * admin_public is true, since the admin listener trusts its network.
 */
int		 cfg_admin(struct cfg_doc *, const struct cfg_node *root,
		    const char *example, struct cfg_listen **out, int *pub);

/*
 * A "timeouts" section's keepalive must stay below its dead_peer: the
 * same rule, and words, for both daemons' tunnels.
 */
int		 cfg_keepalive(struct cfg_doc *, const struct cfg_node *map,
		    unsigned keepalive_ms, unsigned dead_peer_ms);

/* Human form of a duration in ms ("5s") or a size ("256KiB"). */
const char	*cfg_fmt_ms(unsigned, char *, size_t);
const char	*cfg_fmt_size(size_t, char *, size_t);

/*
 * Find the earliest entry whose key equals an earlier one's.  Returns 1
 * and sets *first and *dup (indices into the caller's array), or 0; -1
 * when out of memory (d's error says so).  Sorts a copy; the caller's
 * order is kept.
 */
int		 cfg_dup_find(struct cfg_doc *, const struct cfg_dup *,
		    size_t, size_t *first, size_t *dup);
/* Make e the len bytes at key, the order-th of its list. */
void		 cfg_dup_set(struct cfg_dup *e, size_t order, const void *key,
		    size_t len);
/*
 * cfg_dup_find over n entries of a list written as list, entry i read
 * from key in the map seq->kids[i]: the first repeat is reported as
 * "list[i].key: problem: 'value' (first at line N; hint)".  Returns 0
 * when there is none, else -1.
 */
int		 cfg_seq_dups(struct cfg_doc *, const struct cfg_node *seq,
		    const struct cfg_dup *, size_t n, const char *list,
		    const char *key, const char *problem, const char *hint);

#endif
