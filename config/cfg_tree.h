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
	struct cfg_node	*root;
	char		*err;
	size_t		 errlen;
};

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

/* Read a whole file of at most CFG_FILE_MAX bytes.  Caller frees. */
char		*cfg_read_file(const char *path, size_t *len, char *err,
		    size_t errlen);

/* rel resolved against the directory of base, or a copy.  Caller frees. */
char		*cfg_path_resolve(const char *base, const char *rel);

/* Errors: all return -1 so that callers can "return cfg_error(...)". */
int		 cfg_error(struct cfg_doc *, const struct cfg_node *,
		    const char *, ...) __attribute__((format(printf, 3, 4)));
int		 cfg_bad(struct cfg_doc *, const struct cfg_node *,
		    const char *what, const char *problem, const char *hint,
		    ...) __attribute__((format(printf, 5, 6)));

/* Mapping access. */
struct cfg_node	*cfg_map_get(const struct cfg_node *, const char *key);
int		 cfg_map_keys(struct cfg_doc *, const struct cfg_node *,
		    const char *what, const char *const *allowed);
int		 cfg_map_require(struct cfg_doc *, const struct cfg_node *,
		    const char *what, const char *key, const char *hint,
		    struct cfg_node **);

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
 * The required "identity" key of map: a key file path, resolved against
 * the directory of base when relative and base is not NULL.
 */
int		 cfg_identity(struct cfg_doc *, const struct cfg_node *,
		    const char *base, const char *hint, char **);

/* Human form of a duration in ms ("5s") or a size ("256KiB"). */
const char	*cfg_fmt_ms(unsigned, char *, size_t);
const char	*cfg_fmt_size(size_t, char *, size_t);

/*
 * Find the earliest entry whose key equals an earlier one's.  Returns 1
 * and sets *first and *dup (indices into the caller's array), or 0.
 * Sorts a copy; the caller's order is kept.
 */
int		 cfg_dup_find(const struct cfg_dup *, size_t, size_t *first,
		    size_t *dup);

#endif
