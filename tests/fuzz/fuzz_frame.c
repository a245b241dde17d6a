/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer entry for the tunnel frame codec.  The input is read as a
 * stream of frames, as tun.c reads the tunnel; every payload parser runs
 * on every frame.  Whatever parses must encode to at most one payload,
 * parse again to the same values and encode again to the same bytes.
 */

#include <sys/socket.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tun_frame.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void	check_header(const uint8_t *, const struct tun_frame *);
static void	check_hello(const struct tun_frame *);
static void	check_open(const struct tun_frame *);
static void	check_claim(const struct tun_frame *, int);
static void	check_reason(const struct tun_frame *, int);
static void	check_window(const struct tun_frame *);
static void	check_announce(const struct tun_frame *);
static void	check_cluster(const struct tun_frame *);
static void	check_addr(const struct tun_addr *);
static void	reframe(struct tun_frame *, const struct tun_frame *,
		    const uint8_t *, size_t);
static void	same_addr(const struct tun_addr *, const struct tun_addr *);

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

/* Encoders may write up to a full payload; keep slack to catch more. */
static uint8_t	enc1[TUN_MAX_PAYLOAD * 2], enc2[TUN_MAX_PAYLOAD * 2];

/* Entries that parse rebuild into the same bytes. */
static void
check_announce(const struct tun_frame *f)
{
	struct tun_claim	c;
	struct tun_frame	g;
	uint32_t		ttl, ttl2;
	size_t			off = 0, off2 = 0, n;
	int			r;

	n = tun_announce_begin(enc1, 0);
	while ((r = tun_announce_parse(f, &ttl, &off, &c)) == 1) {
		CHECK(off <= f->len);
		n = tun_announce_add(enc1, n, c.name, c.kinds);
		CHECK(n != 0);
	}
	if (r == -1)
		return;
	tun_announce_begin(enc1, ttl);
	CHECK(n == (f->len < 4 ? 4 : f->len));
	CHECK(memcmp(enc1, f->payload, n) == 0);
	g = *f;
	g.payload = enc1;
	g.len = (uint32_t)n;
	while (tun_announce_parse(&g, &ttl2, &off2, &c) == 1)
		;
	CHECK(ttl2 == ttl && off2 == n);
}

/* A view re-encodes to the bytes it was read from, less any tail. */
static void
check_cluster(const struct tun_frame *f)
{
	static struct tun_gw_info	 a[TUN_CLUSTER_GW_MAX],
					 b[TUN_CLUSTER_GW_MAX];
	struct tun_frame		 g;
	size_t				 n, m, len, i;
	unsigned			 ports = 0;

	if (tun_cluster_parse(f, a, &n) == -1)
		return;
	CHECK(n <= TUN_CLUSTER_GW_MAX);
	/* Ports are not part of a view: written as 0, whatever came. */
	for (i = 0; i < n; i++) {
		CHECK(a[i].naddr <= TUN_CLUSTER_ADDR_MAX &&
		    strlen(a[i].name) < sizeof(a[i].name));
		for (m = 0; m < a[i].naddr; m++) {
			ports |= a[i].addr[m].port;
			a[i].addr[m].port = 0;
		}
	}
	len = tun_cluster_encode(a, n, enc1);
	CHECK(len <= f->len);
	reframe(&g, f, enc1, len);
	CHECK(tun_cluster_parse(&g, b, &m) == 0 && m == n);
	CHECK(memcmp(a, b, n * sizeof(a[0])) == 0);
	/* With no ports and no tail, the encoding is the input itself. */
	if (len == f->len && ports == 0)
		CHECK(memcmp(enc1, f->payload, len) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tun_frame	 f;
	int			 n;

	while ((n = tun_frame_decode(data, size, &f)) > 0) {
		CHECK((size_t)n == TUN_HDR_LEN + f.len && (size_t)n <= size);
		CHECK(f.len <= TUN_MAX_PAYLOAD);
		CHECK(f.payload == data + TUN_HDR_LEN);
		CHECK(f.stream <= 0x7fffffff);
		check_header(data, &f);
		check_hello(&f);
		check_open(&f);
		check_claim(&f, 0);
		check_claim(&f, 1);
		check_reason(&f, 0);
		check_reason(&f, 1);
		check_window(&f);
		check_announce(&f);
		check_cluster(&f);
		CHECK(tun_type_name(f.type) != NULL);
		data += n;
		size -= (size_t)n;
	}
	/* A refused header is refused for its length alone. */
	if (n == -1)
		CHECK(size >= TUN_HDR_LEN &&
		    (((uint32_t)data[0] << 16) | ((uint32_t)data[1] << 8) |
		    data[2]) > TUN_MAX_PAYLOAD);
	return 0;
}

/* Re-encoding the decoded header gives the input bytes, less bit 31. */
static void
check_header(const uint8_t *in, const struct tun_frame *f)
{
	uint8_t			 hdr[TUN_HDR_LEN];
	struct tun_frame	 g;

	tun_frame_header(hdr, f->type, f->flags, f->stream, f->len);
	CHECK(memcmp(hdr, in, 5) == 0);
	CHECK(hdr[5] == (in[5] & 0x7f));
	CHECK(memcmp(hdr + 6, in + 6, 3) == 0);
	CHECK(tun_frame_decode(hdr, sizeof(hdr), &g) ==
	    (f->len == 0 ? TUN_HDR_LEN : 0));
}

static void
check_hello(const struct tun_frame *f)
{
	struct tun_hello	 a, b;
	struct tun_frame	 g;
	size_t			 n1, n2;

	if (tun_hello_parse(f, &a) == -1)
		return;
	CHECK(strlen(a.name) < sizeof(a.name));
	n1 = tun_hello_encode(&a, enc1);
	/* The encoding always has the instance; an input without one (a
	 * sender that predates it) reads as instance 0. */
	CHECK(n1 <= TUN_MAX_PAYLOAD);
	CHECK(n1 <= f->len || (a.instance == 0 && n1 - 8 <= f->len));
	reframe(&g, f, enc1, n1);
	CHECK(tun_hello_parse(&g, &b) == 0);
	CHECK(a.version == b.version && a.role == b.role &&
	    a.window == b.window && a.instance == b.instance);
	CHECK(memcmp(a.pub, b.pub, sizeof(a.pub)) == 0);
	CHECK(memcmp(a.sig, b.sig, sizeof(a.sig)) == 0);
	CHECK(strcmp(a.name, b.name) == 0);
	n2 = tun_hello_encode(&b, enc2);
	CHECK(n1 == n2 && memcmp(enc1, enc2, n1) == 0);
	/* Without trailing bytes, the encoding is the input itself. */
	if (n1 == f->len)
		CHECK(memcmp(enc1, f->payload, n1) == 0);
}

static void
check_open(const struct tun_frame *f)
{
	struct tun_open		 a, b;
	struct tun_frame	 g;
	size_t			 n1, n2;

	if (tun_open_parse(f, &a) == -1)
		return;
	CHECK(a.kind == TUN_KIND_TLS || a.kind == TUN_KIND_HTTP ||
	    a.kind == TUN_KIND_ACME_HTTP || a.kind == TUN_KIND_ACME_TLS);
	CHECK(strlen(a.name) > 0 && strlen(a.name) <= NAME_MAX_LEN);
	n1 = tun_open_encode(&a, enc1);
	CHECK(n1 <= TUN_MAX_PAYLOAD && n1 <= f->len);
	reframe(&g, f, enc1, n1);
	CHECK(tun_open_parse(&g, &b) == 0);
	CHECK(a.kind == b.kind);
	same_addr(&a.src, &b.src);
	same_addr(&a.dst, &b.dst);
	CHECK(strcmp(a.name, b.name) == 0);
	n2 = tun_open_encode(&b, enc2);
	CHECK(n1 == n2 && memcmp(enc1, enc2, n1) == 0);
	if (n1 == f->len)
		CHECK(memcmp(enc1, f->payload, n1) == 0);
	check_addr(&a.src);
	check_addr(&a.dst);
}

static void
check_claim(const struct tun_frame *f, int result)
{
	struct tun_claim	 a, b;
	struct tun_frame	 g;
	size_t			 n1, n2;

	if (tun_claim_parse(f, result, &a) == -1)
		return;
	CHECK(strlen(a.name) <= NAME_MAX_LEN && strlen(a.msg) <= TUN_MSG_MAX);
	CHECK(result ? a.kinds == 0 : (a.status == 0 && a.msg[0] == '\0'));
	n1 = tun_claim_encode(&a, result, enc1);
	CHECK(n1 <= TUN_MAX_PAYLOAD && n1 <= f->len);
	reframe(&g, f, enc1, n1);
	CHECK(tun_claim_parse(&g, result, &b) == 0);
	CHECK(a.kinds == b.kinds && a.status == b.status);
	CHECK(a.priority == b.priority && a.policy == b.policy);
	CHECK(strcmp(a.name, b.name) == 0);
	CHECK(strcmp(a.msg, b.msg) == 0);
	n2 = tun_claim_encode(&b, result, enc2);
	CHECK(n1 == n2 && memcmp(enc1, enc2, n1) == 0);
}

static void
check_reason(const struct tun_frame *f, int goaway)
{
	struct tun_reason	 a, b;
	struct tun_frame	 g;
	size_t			 n1, n2;

	if (tun_reason_parse(f, goaway, &a) == -1)
		return;
	CHECK(strlen(a.msg) <= TUN_MSG_MAX);
	CHECK(goaway || a.last_stream == 0);
	for (n1 = 0; a.msg[n1] != '\0'; n1++)
		CHECK(a.msg[n1] >= 0x20 && a.msg[n1] <= 0x7e);
	n1 = tun_reason_encode(&a, goaway, enc1);
	CHECK(n1 <= TUN_MAX_PAYLOAD);
	reframe(&g, f, enc1, n1);
	CHECK(tun_reason_parse(&g, goaway, &b) == 0);
	CHECK(a.code == b.code && a.last_stream == b.last_stream);
	/* The text is escaped for logs (a byte outside 0x20-0x7e, and the
	 * backslash, become \xNN), so only text that needed no escape reads
	 * back the same. */
	if (strchr(a.msg, '\\') != NULL)
		return;
	CHECK(n1 <= f->len);
	CHECK(strcmp(a.msg, b.msg) == 0);
	n2 = tun_reason_encode(&b, goaway, enc2);
	CHECK(n1 == n2 && memcmp(enc1, enc2, n1) == 0);
	(void)tun_err_name(a.code);
}

static void
check_window(const struct tun_frame *f)
{
	struct tun_frame	 g;
	uint32_t		 a, b;

	if (tun_window_parse(f, &a) == -1)
		return;
	CHECK(a >= 1 && a <= 0x7fffffff && f->len == 4 && f->stream != 0);
	enc1[0] = a >> 24;
	enc1[1] = (a >> 16) & 0xff;
	enc1[2] = (a >> 8) & 0xff;
	enc1[3] = a & 0xff;
	CHECK(memcmp(enc1, f->payload, 4) == 0);
	reframe(&g, f, enc1, 4);
	CHECK(tun_window_parse(&g, &b) == 0 && a == b);
}

/* An address survives the trip through a sockaddr and back. */
static void
check_addr(const struct tun_addr *a)
{
	struct sockaddr_storage	 ss;
	struct tun_addr		 b;

	tun_addr_to_ss(a, &ss);
	tun_addr_from_sa(&b, (struct sockaddr *)&ss);
	CHECK(a->family == b.family);
	if (a->family == 0) {
		CHECK(ss.ss_family == AF_UNSPEC && b.port == 0);
		return;
	}
	CHECK(a->port == b.port);
	CHECK(memcmp(a->addr, b.addr, a->family == 4 ? 4 : 16) == 0);
}

static void
reframe(struct tun_frame *g, const struct tun_frame *f, const uint8_t *p,
    size_t len)
{
	*g = *f;
	g->payload = p;
	g->len = (uint32_t)len;
}

static void
same_addr(const struct tun_addr *a, const struct tun_addr *b)
{
	CHECK(a->family == b->family && a->port == b->port);
	CHECK(memcmp(a->addr, b->addr, sizeof(a->addr)) == 0);
}
