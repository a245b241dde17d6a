/*
 * ddns.h: dynamic DNS updates (RFC 2136) signed with TSIG (RFC 8945).
 *
 * Three layers, each usable alone: a TSIG key file reader (the format
 * BIND's tsig-keygen writes), the messages (an update with an optional
 * prerequisite, and the check of its reply, both through ldns so that
 * no wire format is written by hand here), and a transport that sends
 * one message over UDP, or TCP when it is large or the reply was
 * truncated, without blocking the event loop.
 *
 * Only single records are ever added or deleted: an agent shares an
 * RRset with other replicas and must never replace it whole.
 */
#ifndef PORCH_DDNS_H
#define PORCH_DDNS_H

#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

/* ------------------------------------------------------------ TSIG key */

#define DDNS_NAME_MAX	256		/* a domain name in text, with NUL */

struct ddns_key {
	char	name[DDNS_NAME_MAX];	/* "porch-key." */
	char	alg[32];		/* "hmac-sha256." */
	char	secret[128];		/* base64, as in the file */
};

/*
 * Parse the text of a key file: exactly one
 *   key "NAME" { algorithm hmac-sha256; secret "BASE64"; };
 * with #, // and C comments allowed.  Returns 0, or -1 with a message
 * naming the line and what was expected.
 */
int	ddns_key_parse(const char *text, size_t len, struct ddns_key *,
	    char *err, size_t errlen);
/* Read and parse path; refuses a file others may read, as for keys. */
int	ddns_key_load(const char *path, struct ddns_key *, char *err,
	    size_t errlen);
void	ddns_key_clear(struct ddns_key *);

/* ------------------------------------------------------------ messages */

/* One record to add or to delete (delete: only this exact record). */
struct ddns_change {
	int		 del;
	const char	*name;		/* absolute, the final dot optional */
	uint16_t	 type;		/* DDNS_A, ... */
	uint32_t	 ttl;		/* ignored for a delete */
	const char	*rdata;		/* presentation form: "192.0.2.1" */
};

/*
 * A prerequisite (RFC 2136 2.4.2/2.4.3): the RRset name/type holds
 * exactly rdata[0..n-1], or, with n == 0, does not exist.  An update
 * made from what was read fails with NXRRSET if someone changed the
 * RRset in between, and is then made again from a fresh read.
 */
struct ddns_prereq {
	const char	*name;
	uint16_t	 type;
	const char	*const *rdata;
	size_t		 n;
};

#define DDNS_A		1
#define DDNS_TXT	16
#define DDNS_AAAA	28
#define DDNS_CAA	257

struct ddns_msg;		/* an update, signed, ready to send */

/*
 * Build the update of zone with an optional prerequisite and n changes,
 * signed with key.  Returns NULL with a reason in err (a record ldns
 * cannot parse, a name outside the zone, a message over 64 KiB).
 */
struct ddns_msg	*ddns_msg_new(const char *zone, const struct ddns_prereq *,
		    const struct ddns_change *, size_t n,
		    const struct ddns_key *, char *err, size_t errlen);
void		 ddns_msg_free(struct ddns_msg *);
const uint8_t	*ddns_msg_wire(const struct ddns_msg *, size_t *len);

/* What became of an update. */
enum ddns_status {
	DDNS_OK,		/* applied (NOERROR, signed by the key) */
	DDNS_PREREQ,		/* the RRset changed meanwhile: read again */
	DDNS_REFUSED,		/* the server answered with an error */
	DDNS_TIMEOUT,		/* no answer */
	DDNS_NETWORK,		/* could not reach the server */
	DDNS_BADREPLY,		/* an answer that failed the TSIG check */
};

struct ddns_result {
	enum ddns_status status;
	int		 rcode;		/* the DNS rcode, -1 if none */
	int		 tsig_error;	/* BADSIG 16, BADKEY 17, BADTIME 18 */
	int		 tcp;		/* the answer came over TCP */
	int		 truncated;	/* TC: the transport asks again by TCP */
	char		 text[512];	/* one line: what, in words, and the fix */
};

/*
 * Check an answer against the update it answers.  Returns -1 if the
 * answer is not for msg (another id, not a reply to an UPDATE, not
 * parseable): the caller keeps waiting.  Returns 0 with res filled
 * otherwise; NOERROR counts only when the answer's TSIG verifies.
 */
int		 ddns_msg_reply(const struct ddns_msg *, const uint8_t *,
		    size_t, const struct ddns_key *, struct ddns_result *);

/* A message ldns can read whole, with at most one TSIG record. */
int		 ddns_wire_ok(const uint8_t *, size_t);

/* "NOTAUTH", "BADSIG", ...; numbers for unknown codes. */
const char	*ddns_rcode_name(int rcode, char *buf, size_t len);

/* ------------------------------------------------- what a server holds */

#define DDNS_RRSET_MAX	32		/* records of one RRset we track */
#define DDNS_RDATA_MAX	512		/* one record's data, as text */

/* One RRset as the server answered it, each record in ldns's text form. */
struct ddns_rrset {
	size_t		 n;
	uint32_t	 ttl;
	char		 rdata[DDNS_RRSET_MAX][DDNS_RDATA_MAX];
};

/*
 * Read name/type out of a server's answer to a query for it (from
 * dns_query() on a dns_new_direct() channel).  An NXDOMAIN or empty
 * answer is an empty set.  Returns 0, or -1 with a reason in err (not
 * an answer, not authoritative, a server error, over DDNS_RRSET_MAX).
 */
int	ddns_rrset_parse(const uint8_t *msg, size_t len, const char *name,
	    uint16_t type, struct ddns_rrset *, char *err, size_t errlen);

/* rdata in the text form ddns_rrset_parse() gives, so sets compare. */
int	ddns_rdata_norm(uint16_t type, const char *rdata, char *out,
	    size_t outlen);

/*
 * The changes that bring an RRset from have towards want, touching only
 * what this writer owns: records in want are added, records in dead
 * (addresses of gateways the cluster has given up) deleted unless also
 * wanted, any other record left alone, another replica's or an
 * admin's.  All texts normalised.  Returns the number of changes
 * written to out (at most max).
 */
size_t	ddns_plan(const char *name, uint16_t type, uint32_t ttl,
	    const struct ddns_rrset *have, const char *const *want,
	    size_t nwant, const char *const *dead, size_t ndead,
	    struct ddns_change *out, size_t max);

/* ----------------------------------------------------------- transport */

struct ddns_send;
typedef void	(*ddns_cb)(const struct ddns_result *, void *arg);

/*
 * Send msg (taken: freed when done) to server.  UDP first, resent at 1
 * and 3 s, given up at 7 s, unless the message is over 512 bytes or an
 * answer comes back truncated: then TCP, 10 s in all.  cb runs exactly once, never
 * before this returns, unless ddns_send_cancel() is called first.
 * Returns NULL (cb not called, msg freed) only when out of memory or
 * sockets.
 */
struct ddns_send *ddns_send(struct event_base *, const struct sockaddr *,
		    socklen_t, struct ddns_msg *, const struct ddns_key *,
		    ddns_cb, void *arg);
void		 ddns_send_cancel(struct ddns_send *);

/* ---------------------------------------------------------- one RRset */

struct dns;
struct ddns_sync;

/* What one sync did: res as for an update; changes made (0: none was
 * needed); have is the set as last read (after the update if made). */
typedef void	(*ddns_sync_cb)(const struct ddns_result *, size_t changes,
		    const struct ddns_rrset *have, void *arg);

/*
 * Bring name/type towards want (see ddns_plan): read the RRset from the
 * server through dns (a dns_new_direct() channel to it), plan, and send
 * the update to server with the prerequisite "still as read"; if
 * another writer changed it in between, read and plan again (up to 5
 * rounds).  want and dead are copied, normalised (an entry that is not
 * valid data for type is left out).  cb runs once, never before this
 * returns, unless cancelled.  NULL when out of memory.
 */
struct ddns_sync *ddns_sync(struct event_base *, struct dns *,
		    const struct sockaddr *server, socklen_t, const char *zone,
		    const struct ddns_key *, const char *name, uint16_t type,
		    uint32_t ttl, const char *const *want, size_t nwant,
		    const char *const *dead, size_t ndead, ddns_sync_cb,
		    void *arg);
void		 ddns_sync_cancel(struct ddns_sync *);

#endif
