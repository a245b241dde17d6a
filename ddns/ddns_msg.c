/* SPDX-License-Identifier: ISC */
/*
 * ddns_msg.c: the UPDATE message and the check of its answer, through
 * ldns.  The words of every failure name the fix, because the person
 * who reads them is a DNS admin looking at a log line, not at a packet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>
#include <sodium.h>

#include "ddns.h"

#define DDNS_FUDGE	300		/* RFC 8945 5.2.3: 300 s */
#define DDNS_MSG_MAX	65535

/* TSIG error codes (RFC 8945 4.3) and the rcodes of RFC 2136. */
#define DDNS_BADSIG	16
#define DDNS_BADKEY	17
#define DDNS_BADTIME	18

struct ddns_msg {
	uint8_t		*wire;
	size_t		 len;
	uint16_t	 id;
	ldns_rdf	*mac;		/* our request's MAC, for the answer */
	char		 zone[DDNS_NAME_MAX];
	char		 key[DDNS_NAME_MAX];
};

/*
 * At most one TSIG record, and a message ldns reads whole: ldns 1.8
 * keeps only the last of several TSIG records and loses the others (a
 * leak per message, which anyone can send), so they are counted first,
 * with ldns's own record reader.
 */
int
ddns_wire_ok(const uint8_t *wire, size_t len)
{
	static const ldns_pkt_section sec[4] = { LDNS_SECTION_QUESTION,
	    LDNS_SECTION_ANSWER, LDNS_SECTION_AUTHORITY,
	    LDNS_SECTION_ADDITIONAL };
	ldns_rr		*rr;
	size_t		 pos = 12, i, s;
	unsigned	 count, tsig = 0;

	if (len < 12)
		return 0;
	for (s = 0; s < 4; s++) {
		count = (unsigned)wire[4 + 2 * s] << 8 | wire[5 + 2 * s];
		for (i = 0; i < count; i++) {
			if (ldns_wire2rr(&rr, wire, len, &pos, sec[s]) !=
			    LDNS_STATUS_OK)
				return 0;
			if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_TSIG)
				tsig++;
			ldns_rr_free(rr);
		}
	}
	return tsig <= 1;
}

const char *
ddns_rcode_name(int rcode, char *buf, size_t len)
{
	static const char *const names[] = {
		"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",
		"REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
		"NOTZONE", NULL, NULL, NULL, NULL, NULL,
		"BADSIG", "BADKEY", "BADTIME",
	};

	if (rcode >= 0 && (size_t)rcode < sizeof(names) / sizeof(names[0]) &&
	    names[rcode] != NULL)
		return names[rcode];
	snprintf(buf, len, "rcode %d", rcode);
	return buf;
}

/* An RR from presentation form, with the class and TTL an update needs. */
static ldns_rr *
ddns_rr(const char *name, uint16_t type, uint32_t ttl, const char *rdata,
    ldns_rr_class cls, char *err, size_t errlen)
{
	ldns_rr		*rr = NULL;
	ldns_status	 st;
	char		*text, *tname;
	ldns_rr_type	 t = (ldns_rr_type)type;

	if (rdata == NULL) {
		/* No rdata: "the RRset does not exist" (class NONE, RFC
		 * 2136 2.4.3); ldns writes rdlength 0. */
		if ((rr = ldns_rr_new()) == NULL)
			goto nomem;
		ldns_rr_set_owner(rr, ldns_dname_new_frm_str(name));
		if (ldns_rr_owner(rr) == NULL) {
			snprintf(err, errlen, "'%.80s' is not a domain name",
			    name);
			ldns_rr_free(rr);
			return NULL;
		}
		ldns_rr_set_type(rr, t);
	} else {
		if ((tname = ldns_rr_type2str(t)) == NULL)
			goto nomem;
		if (asprintf(&text, "%s %u IN %s %s", name, ttl, tname,
		    rdata) == -1) {
			free(tname);
			goto nomem;
		}
		st = ldns_rr_new_frm_str(&rr, text, ttl, NULL, NULL);
		free(text);
		if (st != LDNS_STATUS_OK) {
			snprintf(err, errlen, "'%.80s %s %.80s' is not a "
			    "record: %s", name, tname, rdata,
			    ldns_get_errorstr_by_id(st));
			free(tname);
			return NULL;
		}
		free(tname);
	}
	ldns_rr_set_class(rr, cls);
	ldns_rr_set_ttl(rr, cls == LDNS_RR_CLASS_IN && rdata != NULL &&
	    ttl != 0 ? ttl : 0);
	return rr;
nomem:
	snprintf(err, errlen, "out of memory");
	return NULL;
}

/* Is name the zone or below it? */
static int
ddns_in_zone(const ldns_rr *rr, const ldns_rdf *zone)
{
	const ldns_rdf	*owner = ldns_rr_owner(rr);

	return ldns_dname_compare(owner, zone) == 0 ||
	    ldns_dname_is_subdomain(owner, zone);
}

static int
ddns_push(ldns_rr_list *l, ldns_rr *rr, const ldns_rdf *zone,
    const char *name, char *err, size_t errlen)
{
	if (!ddns_in_zone(rr, zone)) {
		snprintf(err, errlen, "'%.80s' is not in the zone", name);
		ldns_rr_free(rr);
		return -1;
	}
	if (!ldns_rr_list_push_rr(l, rr)) {
		snprintf(err, errlen, "out of memory");
		ldns_rr_free(rr);
		return -1;
	}
	return 0;
}

struct ddns_msg *
ddns_msg_new(const char *zone, const struct ddns_prereq *pre,
    const struct ddns_change *ch, size_t n, const struct ddns_key *key,
    char *err, size_t errlen)
{
	struct ddns_msg	*m = NULL;
	ldns_rdf	*zrdf = NULL;
	ldns_rr_list	*prl = NULL, *upl = NULL;
	ldns_pkt	*pkt = NULL;
	ldns_rr		*rr;
	ldns_status	 st;
	size_t		 i;

	if ((zrdf = ldns_dname_new_frm_str(zone)) == NULL) {
		snprintf(err, errlen, "zone '%.80s' is not a domain name",
		    zone);
		return NULL;
	}
	if ((prl = ldns_rr_list_new()) == NULL ||
	    (upl = ldns_rr_list_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (pre != NULL && pre->n == 0) {
		/* RFC 2136 2.4.3: RRset does not exist. */
		if ((rr = ddns_rr(pre->name, pre->type, 0, NULL,
		    LDNS_RR_CLASS_NONE, err, errlen)) == NULL ||
		    ddns_push(prl, rr, zrdf, pre->name, err, errlen) == -1)
			goto fail;
	}
	for (i = 0; pre != NULL && i < pre->n; i++) {
		/* 2.4.2: RRset exists with exactly these records. */
		if ((rr = ddns_rr(pre->name, pre->type, 0, pre->rdata[i],
		    LDNS_RR_CLASS_IN, err, errlen)) == NULL ||
		    ddns_push(prl, rr, zrdf, pre->name, err, errlen) == -1)
			goto fail;
	}
	for (i = 0; i < n; i++) {
		/* 2.5.1 add to an RRset; 2.5.4 delete one RR (class NONE). */
		if ((rr = ddns_rr(ch[i].name, ch[i].type, ch[i].ttl,
		    ch[i].rdata, ch[i].del ? LDNS_RR_CLASS_NONE :
		    LDNS_RR_CLASS_IN, err, errlen)) == NULL ||
		    ddns_push(upl, rr, zrdf, ch[i].name, err, errlen) == -1)
			goto fail;
	}
	if ((pkt = ldns_update_pkt_new(zrdf, LDNS_RR_CLASS_IN, prl, upl,
	    NULL)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* The packet took the zone's name and copied the lists. */
	zrdf = NULL;
	ldns_rr_list_deep_free(prl);
	ldns_rr_list_deep_free(upl);
	prl = upl = NULL;
	ldns_pkt_set_rd(pkt, false);	/* RFC 2136 2.2: RD is not used */
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	m->id = (uint16_t)randombytes_uniform(65536);
	ldns_pkt_set_id(pkt, m->id);
	snprintf(m->zone, sizeof(m->zone), "%s", zone);
	snprintf(m->key, sizeof(m->key), "%s", key->name);
	if ((st = ldns_pkt_tsig_sign(pkt, key->name, key->secret, DDNS_FUDGE,
	    key->alg, NULL)) != LDNS_STATUS_OK) {
		snprintf(err, errlen, "cannot sign with key %s: %s",
		    key->name, ldns_get_errorstr_by_id(st));
		goto fail;
	}
	if ((m->mac = ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(pkt), 3))) ==
	    NULL || ldns_pkt2wire(&m->wire, pkt, &m->len) != LDNS_STATUS_OK) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (m->len > DDNS_MSG_MAX) {
		snprintf(err, errlen, "the update is %zu bytes, over the "
		    "64 KiB of a DNS message", m->len);
		goto fail;
	}
	ldns_pkt_free(pkt);
	return m;
fail:
	ddns_msg_free(m);
	ldns_pkt_free(pkt);
	ldns_rr_list_deep_free(prl);
	ldns_rr_list_deep_free(upl);
	ldns_rdf_deep_free(zrdf);
	return NULL;
}

void
ddns_msg_free(struct ddns_msg *m)
{
	if (m == NULL)
		return;
	ldns_rdf_deep_free(m->mac);
	free(m->wire);
	free(m);
}

const uint8_t *
ddns_msg_wire(const struct ddns_msg *m, size_t *len)
{
	*len = m->len;
	return m->wire;
}

/* The line for an answer that is not NOERROR: what, and the fix. */
static void
ddns_explain(const struct ddns_msg *m, struct ddns_result *res)
{
	char		 b1[16], b2[16];
	const char	*rc = ddns_rcode_name(res->rcode, b1, sizeof(b1));

	switch (res->tsig_error) {
	case DDNS_BADSIG:
		snprintf(res->text, sizeof(res->text), "%s/BADSIG: the "
		    "server's secret for key %.100s differs from ours; give both "
		    "the same key file", rc, m->key);
		return;
	case DDNS_BADKEY:
		/* Knot answers an ACL refusal of a signed update so too. */
		snprintf(res->text, sizeof(res->text), "%s/BADKEY: the "
		    "server does not know key %.100s (name or algorithm "
		    "differ), or its ACL does not let the key make this "
		    "change in zone %.100s (Knot says so); check the key and "
		    "the zone's update rules on the server", rc, m->key,
		    m->zone);
		return;
	case DDNS_BADTIME:
		snprintf(res->text, sizeof(res->text), "%s/BADTIME: this "
		    "host's clock and the server's differ by more than %d s; "
		    "check NTP on both", rc, DDNS_FUDGE);
		return;
	case 0:
		break;
	default:
		snprintf(res->text, sizeof(res->text), "%s, TSIG error %s",
		    rc, ddns_rcode_name(res->tsig_error, b2, sizeof(b2)));
		return;
	}
	switch (res->rcode) {
	case LDNS_RCODE_REFUSED:
		snprintf(res->text, sizeof(res->text), "REFUSED: the server "
		    "does not let key %.100s make this change in zone %.100s; grant "
		    "it in the zone's update-policy (e.g. grant %.100s zonesub "
		    "ANY;)", m->key, m->zone, m->key);
		break;
	case LDNS_RCODE_NOTAUTH:
		snprintf(res->text, sizeof(res->text), "NOTAUTH: the server "
		    "is not authoritative for zone %.100s; send updates to the "
		    "zone's primary server", m->zone);
		break;
	case LDNS_RCODE_NOTZONE:
		snprintf(res->text, sizeof(res->text), "NOTZONE: a name is "
		    "not in zone %.100s", m->zone);
		break;
	case LDNS_RCODE_SERVFAIL:
		snprintf(res->text, sizeof(res->text), "SERVFAIL: the server "
		    "failed to apply the update (see its log: is zone %.100s "
		    "loaded and its journal writable?)", m->zone);
		break;
	case LDNS_RCODE_NOTIMPL:
		snprintf(res->text, sizeof(res->text), "NOTIMP: the server "
		    "does not accept dynamic updates");
		break;
	case LDNS_RCODE_FORMERR:
		snprintf(res->text, sizeof(res->text), "FORMERR: the server "
		    "could not parse the update");
		break;
	case LDNS_RCODE_NXRRSET:
	case LDNS_RCODE_YXRRSET:
	case LDNS_RCODE_NXDOMAIN:
	case LDNS_RCODE_YXDOMAIN:
		snprintf(res->text, sizeof(res->text), "%s: the records "
		    "changed since they were read", rc);
		break;
	default:
		snprintf(res->text, sizeof(res->text), "%s", rc);
		break;
	}
}

/*
 * Is the answer's TSIG made with our key's name and algorithm?  Asked
 * before ldns verifies: ldns 1.8 loses the TSIG record (a leak per
 * answer, which anyone can send) when it cannot compute the MAC, as
 * for an algorithm it does not know.
 */
static int
ddns_tsig_ours(const ldns_rr *tsig, const struct ddns_key *key)
{
	ldns_rdf	*name, *alg;
	int		 ours;

	if (ldns_rr_rd_count(tsig) < 7 || ldns_rr_rdf(tsig, 0) == NULL)
		return 0;
	name = ldns_dname_new_frm_str(key->name);
	alg = ldns_dname_new_frm_str(key->alg);
	ours = name != NULL && alg != NULL &&
	    ldns_dname_compare(ldns_rr_owner(tsig), name) == 0 &&
	    ldns_dname_compare(ldns_rr_rdf(tsig, 0), alg) == 0;
	ldns_rdf_deep_free(name);
	ldns_rdf_deep_free(alg);
	return ours;
}

int
ddns_msg_reply(const struct ddns_msg *m, const uint8_t *wire, size_t len,
    const struct ddns_key *key, struct ddns_result *res)
{
	ldns_pkt	*pkt = NULL;
	ldns_rr		*tsig;
	ldns_rdf	*e;
	int		 verified = 0;

	memset(res, 0, sizeof(*res));
	res->rcode = -1;
	if (!ddns_wire_ok(wire, len) ||
	    ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK)
		return -1;
	if (ldns_pkt_id(pkt) != m->id || !ldns_pkt_qr(pkt) ||
	    ldns_pkt_get_opcode(pkt) != LDNS_PACKET_UPDATE) {
		ldns_pkt_free(pkt);
		return -1;
	}
	res->rcode = ldns_pkt_get_rcode(pkt);
	if (ldns_pkt_tc(pkt)) {
		res->status = DDNS_TIMEOUT;	/* the transport retries */
		res->truncated = 1;
		ldns_pkt_free(pkt);
		return 0;
	}
	if ((tsig = ldns_pkt_tsig(pkt)) != NULL) {
		if (ldns_rr_rd_count(tsig) > 5 &&
		    (e = ldns_rr_rdf(tsig, 5)) != NULL &&
		    ldns_rdf_get_type(e) == LDNS_RDF_TYPE_INT16)
			res->tsig_error = ldns_rdf2native_int16(e);
		if (ddns_tsig_ours(tsig, key))
			verified = ldns_pkt_tsig_verify(pkt, wire, len,
			    key->name, key->secret, m->mac);
	}
	ldns_pkt_free(pkt);
	if (res->rcode == LDNS_RCODE_NOERROR && res->tsig_error == 0) {
		if (verified) {
			res->status = DDNS_OK;
			snprintf(res->text, sizeof(res->text), "NOERROR");
		} else {
			/* Only a signed answer can say it worked: anyone on
			 * the path can send an unsigned NOERROR. */
			res->status = DDNS_BADREPLY;
			snprintf(res->text, sizeof(res->text), "an answer "
			    "that says NOERROR failed the TSIG check of key "
			    "%.100s (forged, or changed on the way); ignored",
			    m->key);
		}
		return 0;
	}
	switch (res->rcode) {
	case LDNS_RCODE_NXRRSET:
	case LDNS_RCODE_YXRRSET:
	case LDNS_RCODE_NXDOMAIN:
	case LDNS_RCODE_YXDOMAIN:
		res->status = res->tsig_error == 0 ? DDNS_PREREQ :
		    DDNS_REFUSED;
		break;
	default:
		res->status = DDNS_REFUSED;
		break;
	}
	ddns_explain(m, res);
	return 0;
}
