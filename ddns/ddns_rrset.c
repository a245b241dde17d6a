/* SPDX-License-Identifier: ISC */
/*
 * ddns_rrset.c: what an RRset holds at the server, and which records an
 * update should add or delete.  The planner is the rule that lets
 * several replicas share one RRset without a lock: each adds what it
 * wants, deletes only what the cluster has given up, leaves everything
 * else, and makes the change only if the set is still what it read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "ddns.h"

int
ddns_rrset_parse(const uint8_t *msg, size_t len, const char *name,
    uint16_t type, struct ddns_rrset *set, char *err, size_t errlen)
{
	ldns_pkt	*pkt = NULL;
	ldns_rdf	*owner = NULL;
	ldns_rr_list	*ans;
	ldns_rr		*rr;
	ldns_buffer	*buf = NULL;
	size_t		 i, j;
	int		 rc = -1, rcode;
	char		 b[16], norm[DDNS_RDATA_MAX];

	memset(set, 0, sizeof(*set));
	if (!ddns_wire_ok(msg, len) ||
	    ldns_wire2pkt(&pkt, msg, len) != LDNS_STATUS_OK) {
		snprintf(err, errlen, "the answer does not parse");
		return -1;
	}
	rcode = ldns_pkt_get_rcode(pkt);
	if (!ldns_pkt_qr(pkt) || (rcode != LDNS_RCODE_NOERROR &&
	    rcode != LDNS_RCODE_NXDOMAIN)) {
		snprintf(err, errlen, "the server answered %s",
		    ddns_rcode_name(rcode, b, sizeof(b)));
		goto out;
	}
	if (!ldns_pkt_aa(pkt)) {
		/* A cache or a forwarder: not what the zone holds now. */
		snprintf(err, errlen, "the answer is not authoritative: is "
		    "this the zone's primary server?");
		goto out;
	}
	if ((owner = ldns_dname_new_frm_str(name)) == NULL ||
	    (buf = ldns_buffer_new(DDNS_RDATA_MAX)) == NULL) {
		snprintf(err, errlen, "'%.80s' is not a domain name", name);
		goto out;
	}
	ans = ldns_pkt_answer(pkt);
	for (i = 0; i < ldns_rr_list_rr_count(ans); i++) {
		rr = ldns_rr_list_rr(ans, i);
		if (ldns_rr_get_type(rr) != type ||
		    ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN ||
		    ldns_dname_compare(ldns_rr_owner(rr), owner) != 0)
			continue;
		if (set->n == DDNS_RRSET_MAX) {
			snprintf(err, errlen, "%.80s holds over %d records",
			    name, DDNS_RRSET_MAX);
			goto out;
		}
		ldns_buffer_clear(buf);
		for (j = 0; j < ldns_rr_rd_count(rr); j++) {
			if (j > 0)
				ldns_buffer_printf(buf, " ");
			if (ldns_rdf2buffer_str(buf, ldns_rr_rdf(rr, j)) !=
			    LDNS_STATUS_OK)
				break;
		}
		if (j < ldns_rr_rd_count(rr) || !ldns_buffer_status_ok(buf) ||
		    ldns_buffer_position(buf) >= DDNS_RDATA_MAX) {
			snprintf(err, errlen, "a record of %.80s is over %d "
			    "bytes as text", name, DDNS_RDATA_MAX - 1);
			goto out;
		}
		memcpy(set->rdata[set->n], ldns_buffer_begin(buf),
		    ldns_buffer_position(buf));
		set->rdata[set->n][ldns_buffer_position(buf)] = '\0';
		/* ldns takes an A of 0 bytes from the wire, but it is
		 * no record we could ever delete: refuse the answer. */
		if (ddns_rdata_norm(type, set->rdata[set->n], norm,
		    sizeof(norm)) == -1 ||
		    strcmp(norm, set->rdata[set->n]) != 0) {
			snprintf(err, errlen, "a record of %.80s is malformed",
			    name);
			goto out;
		}
		set->ttl = ldns_rr_ttl(rr);
		set->n++;
	}
	rc = 0;
out:
	ldns_buffer_free(buf);
	ldns_rdf_deep_free(owner);
	ldns_pkt_free(pkt);
	if (rc == -1)
		memset(set, 0, sizeof(*set));
	return rc;
}

int
ddns_rdata_norm(uint16_t type, const char *rdata, char *out, size_t outlen)
{
	ldns_rr		*rr = NULL;
	ldns_buffer	*buf = NULL;
	char		*tname = NULL, *line = NULL;
	size_t		 j;
	int		 rc = -1;

	if ((buf = ldns_buffer_new(DDNS_RDATA_MAX)) == NULL ||
	    (tname = ldns_rr_type2str((ldns_rr_type)type)) == NULL ||
	    asprintf(&line, "x. 0 IN %s %s", tname, rdata) == -1) {
		line = NULL;
		goto out;
	}
	if (ldns_rr_new_frm_str(&rr, line, 0, NULL, NULL) != LDNS_STATUS_OK)
		goto out;
	for (j = 0; j < ldns_rr_rd_count(rr); j++) {
		if (j > 0)
			ldns_buffer_printf(buf, " ");
		if (ldns_rdf2buffer_str(buf, ldns_rr_rdf(rr, j)) !=
		    LDNS_STATUS_OK)
			goto out;
	}
	if (!ldns_buffer_status_ok(buf) ||
	    ldns_buffer_position(buf) >= outlen)
		goto out;
	memcpy(out, ldns_buffer_begin(buf), ldns_buffer_position(buf));
	out[ldns_buffer_position(buf)] = '\0';
	rc = 0;
out:
	free(line);
	free(tname);
	ldns_rr_free(rr);
	ldns_buffer_free(buf);
	return rc;
}

static int
ddns_in(const char *s, const char *const *list, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return 1;
	return 0;
}

size_t
ddns_plan(const char *name, uint16_t type, uint32_t ttl,
    const struct ddns_rrset *have, const char *const *want, size_t nwant,
    const char *const *dead, size_t ndead, struct ddns_change *out,
    size_t max)
{
	const char	*h[DDNS_RRSET_MAX];
	size_t		 i, n = 0;

	for (i = 0; i < have->n; i++)
		h[i] = have->rdata[i];
	for (i = 0; i < nwant && n < max; i++) {
		if (ddns_in(want[i], h, have->n) ||
		    ddns_in(want[i], want, i))		/* listed twice */
			continue;
		out[n++] = (struct ddns_change){ 0, name, type, ttl, want[i] };
	}
	for (i = 0; i < have->n && n < max; i++) {
		if (ddns_in(h[i], want, nwant) || !ddns_in(h[i], dead, ndead))
			continue;
		out[n++] = (struct ddns_change){ 1, name, type, ttl, h[i] };
	}
	return n;
}
