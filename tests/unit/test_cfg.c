/* SPDX-License-Identifier: ISC */
/*
 * The config loader against the shipped examples, a table of broken
 * configs (each must name the right line:column and say what is wrong),
 * the defaults, typed values (replicas, health checks, peers and admin
 * listeners included), and file loading with relative identity paths.
 * Every bad config is its own cmocka test, named after its case.
 */

#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"

#define GWK	"ed25519:tWhVhZvvo86LUJoFfVOsxp+Z2c5nvGx1JEd82uZC3ug="
#define AGK	"ed25519:EL2mT+HpuRZi3nKWDPsjTJz7FgCOI8JY8BXQX/rEdNM="
#define ZEROK	"ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

/* Four lines; cases append from line 5. */
#define GW_BASE \
	"identity: gw.key\n" \
	"listen:\n" \
	"  tls: 127.0.0.1:8443\n" \
	"  tunnel: 127.0.0.1:7443\n"

/* Eight lines; cases append from line 9. */
#define AG_BASE \
	"identity: agent.key\n" \
	"gateways:\n" \
	"  - name: gw1\n" \
	"    address: gw1.example.net:7443\n" \
	"    key: \"" GWK "\"\n" \
	"services:\n" \
	"  - hostname: app.example.test\n" \
	"    tls: 127.0.0.1:9443\n"

/* An agent with an acme: section, and one without, each ending in an
 * open service entry the test completes. */
#define AG_ACME_PRE \
	"identity: agent.key\n" \
	"gateways:\n" \
	"  - name: gw1\n" \
	"    address: gw1.example.net:7443\n" \
	"    key: \"" GWK "\"\n" \
	"acme:\n" \
	"  directory: letsencrypt-staging\n"
#define AG_ACME_POST \
	"  state_dir: /var/lib/porch\n" \
	"services:\n" \
	"  - hostname: app.example.test\n" \
	"    tls: 127.0.0.1:9443\n"
#define AG_ACME_HEAD \
	AG_ACME_PRE "  agree_tos: true\n  state_dir: /var/lib/porch\n" \
	"services:\n"
#define AG_ACME_SVC AG_ACME_HEAD "  - hostname: app.example.test\n"
#define AG_NOACME \
	"identity: agent.key\n" \
	"gateways:\n" \
	"  - name: gw1\n" \
	"    address: gw1.example.net:7443\n" \
	"    key: \"" GWK "\"\n" \
	"services:\n" \
	"  - hostname: app.example.test\n"

#define GW_AGENT(name, key, hosts) \
	"  - name: " name "\n" \
	"    key: \"" key "\"\n" \
	"    hostnames: " hosts "\n"

/* Three lines: name, address, key (its value at column 10). */
#define GW_PEER(name, addr, key) \
	"  - name: " name "\n" \
	"    address: " addr "\n" \
	"    key: \"" key "\"\n"

/* Health path lengths: "/" A64 A64 A64 A62 is 255 bytes. */
#define A31	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define A62	A31 A31
#define A64	A31 A31 "aa"
#define PATH255	"/" A64 A64 A64 A62

enum schema { GW, AG };

struct bad {
	const char	*name;
	enum schema	 schema;
	const char	*text;
	const char	*where;		/* "LINE:COL", or NULL for none */
	const char	*what;		/* a keyword the message must hold */
};

static const struct bad bad_configs[] = {
	/* Syntax and document shape. */
	{ "empty", GW, "", "1:1", "empty configuration" },
	{ "only_comments", AG, "# nothing here\n\n", "1:1",
	    "empty configuration" },
	{ "only_null", GW, "---\n", "1:1", "empty configuration" },
	{ "top_list", GW, "- identity: x\n", "1:1", "expected a mapping" },
	{ "top_string", AG, "hello\n", "1:1", "expected a mapping" },
	{ "syntax_flow", GW, "identity: k\nlisten: [\n", "3:1",
	    "YAML syntax error" },
	{ "syntax_indent", GW, "identity: k\n  listen: x\n", "2:9",
	    "YAML syntax error: mapping values are not allowed" },
	{ "syntax_tab", AG, "identity: k\n\tname: x\n", "2:1",
	    "YAML syntax error" },
	{ "bad_utf8", GW, "identity: \xff\n", "1:11", "UTF-8" },
	{ "two_docs", GW, GW_BASE "---\nidentity: y\n", "5:1",
	    "second YAML document" },
	{ "anchor", GW, GW_BASE "timeouts: &t\n  hello: 1s\n", "5:11",
	    "anchor not allowed" },
	{ "alias", GW, "identity: *k\n", "1:11", "alias not allowed" },
	{ "billion_laughs", AG,
	    "a: &a [\"lol\", \"lol\", \"lol\"]\n"
	    "b: &b [*a, *a, *a]\n"
	    "c: &c [*b, *b, *b]\n", "1:4", "anchor not allowed" },
	{ "tag", GW, "identity: !!str gw.key\n", "1:11", "tag not allowed" },
	{ "nul_escape", GW, "identity: \"a\\0b\"\n", "1:11",
	    "NUL character" },
	{ "too_deep", GW, "a: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]"
	    "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n", "1:35", "nesting too deep" },
	{ "complex_key", GW, "? [a]\n: b\n", "1:3", "key must be a string" },
	{ "dup_top_key", GW, "identity: a\nidentity: b\n", "2:1",
	    "duplicate key: 'identity' (first at line 1" },
	{ "dup_nested_key", GW, GW_BASE "timeouts:\n  hello: 1s\n"
	    "  hello: 2s\n", "7:3", "duplicate key: 'hello'" },

	/* Gateway: keys and types. */
	{ "gw_unknown_top", GW, GW_BASE "lisen: x\n", "5:1",
	    "unknown key: 'lisen' (allowed: identity, name, admin, "
	    "admin_public, listen, timeouts, limits, public_addresses, agents, "
	    "peers)" },
	{ "gw_public_not_ip", GW, GW_BASE "public_addresses: [gw.example.net]\n",
	    "5:20", "public_addresses[0]: not an IP address: 'gw.example.net' "
	    "(write the address visitors reach this gateway at, without a "
	    "port" },
	{ "gw_public_port", GW, GW_BASE "public_addresses: [\"192.0.2.1:443\"]\n",
	    "5:20", "public_addresses[0]: not an IP address" },
	{ "gw_public_dup", GW, GW_BASE "public_addresses: [192.0.2.1, "
	    "192.0.2.1]\n", "5:31", "public_addresses[1]: duplicate address" },
	{ "gw_public_many", GW, GW_BASE "public_addresses: [192.0.2.1, "
	    "192.0.2.2, 192.0.2.3, 192.0.2.4, 192.0.2.5, 192.0.2.6, 192.0.2.7, "
	    "192.0.2.8, 192.0.2.9]\n", "5:19", "public_addresses: too many "
	    "addresses (list at most 8;" },
	{ "gw_unknown_timeout", GW, GW_BASE "timeouts:\n  helo: 5s\n", "6:3",
	    "timeouts: unknown key: 'helo' (allowed: hello, handshake, "
	    "keepalive, dead_peer, drain, announce)" },
	{ "gw_agent_config", GW, "identity: k\nservices: []\n", "2:1",
	    "looks like a porch-agent config" },
	{ "gw_timeouts_scalar", GW, GW_BASE "timeouts: 5s\n", "5:11",
	    "timeouts: expected a mapping, got a string: '5s'" },
	{ "gw_listen_seq", GW, "identity: k\nlisten: [a]\n", "2:9",
	    "listen: expected a mapping, got a sequence" },
	{ "gw_agents_map", GW, GW_BASE "agents: {a: b}\n", "5:9",
	    "agents: expected a sequence, got a mapping" },
	{ "gw_identity_null", GW, "identity:\nlisten: {}\n", "1:10",
	    "identity: expected a string, got nothing" },
	{ "gw_identity_map", GW, "identity: {a: b}\n", "1:11",
	    "identity: expected a string, got a mapping" },
	{ "gw_identity_empty", GW, "identity: \"\"\n", "1:11",
	    "identity: empty string" },
	{ "gw_missing_identity", GW, "listen:\n  tls: 127.0.0.1:1\n"
	    "  tunnel: 127.0.0.1:2\n", "1:1",
	    "missing required key: 'identity'" },
	{ "gw_missing_listen", GW, "identity: k\n", "1:1",
	    "missing required key: 'listen'" },

	/* Gateway: listeners. */
	{ "gw_listen_no_port", GW, "identity: k\nlisten:\n"
	    "  tls: 127.0.0.1\n  tunnel: 127.0.0.1:7443\n", "3:8",
	    "listen.tls: bad address: '127.0.0.1' (missing :port" },
	{ "gw_listen_hostname", GW, "identity: k\nlisten:\n"
	    "  tls: [\"127.0.0.1:1\", \"localhost:443\"]\n"
	    "  tunnel: 127.0.0.1:7443\n", "3:24",
	    "bad address: 'localhost:443' (not a numeric IPv4" },
	{ "gw_listen_v6_brackets", GW, "identity: k\nlisten:\n"
	    "  http: \"::1:80\"\n  tunnel: 127.0.0.1:7443\n", "3:9",
	    "must be written as [address]:port" },
	{ "gw_listen_port_range", GW, "identity: k\nlisten:\n"
	    "  http: 127.0.0.1:65536\n  tunnel: 127.0.0.1:7443\n", "3:9",
	    "port must be a number 1-65535" },
	{ "gw_listen_escape", GW, "identity: k\nlisten:\n"
	    "  http: \"127.0.0.1\\t:80\"\n  tunnel: 127.0.0.1:7443\n", "3:9",
	    "'127.0.0.1\\x09:80'" },
	{ "gw_no_tunnel", GW, "identity: k\nlisten:\n  tls: 127.0.0.1:1\n",
	    "3:3", "listen: no tunnel address" },
	{ "gw_empty_tunnel", GW, "identity: k\nlisten:\n  tls: 127.0.0.1:1\n"
	    "  tunnel: []\n", "4:11", "listen: no tunnel address" },
	{ "gw_no_visitor", GW, "identity: k\nlisten:\n"
	    "  tunnel: 127.0.0.1:1\n", "3:3", "listen: no visitor address" },
	{ "gw_dup_listen", GW, "identity: k\nlisten:\n"
	    "  tls: [\"127.0.0.1:1\", \"[::1]:1\"]\n"
	    "  tunnel: \"127.0.0.1:1\"\n", "4:11",
	    "listen: duplicate address: '127.0.0.1:1' (first at line 3" },
	{ "gw_unknown_listen", GW, "identity: k\nlisten:\n"
	    "  https: 127.0.0.1:1\n", "3:3",
	    "allowed: tls, http, tunnel" },

	/* Gateway: durations and sizes. */
	{ "gw_bare_integer", GW, GW_BASE "timeouts:\n  hello: 5\n", "6:10",
	    "timeouts.hello: bad duration: '5' (add a unit: '5s'" },
	{ "gw_bad_unit", GW, GW_BASE "timeouts:\n  handshake: 5 sec\n",
	    "6:14", "bad duration: '5 sec'" },
	{ "gw_fraction", GW, GW_BASE "timeouts:\n  handshake: 1.5s\n",
	    "6:14", "bad duration" },
	{ "gw_negative", GW, GW_BASE "timeouts:\n  hello: -1s\n", "6:10",
	    "bad duration" },
	{ "gw_too_long", GW, GW_BASE "timeouts:\n  hello: 2h\n", "6:10",
	    "out of range: '2h' (must be between 1ms and 1h)" },
	{ "gw_huge", GW, GW_BASE "timeouts:\n  hello: 99999999999999999999h\n",
	    "6:10", "out of range" },
	{ "gw_zero", GW, GW_BASE "timeouts:\n  keepalive: 0ms\n", "6:14",
	    "out of range" },
	{ "gw_dead_peer_eq", GW, GW_BASE "timeouts:\n  keepalive: 3s\n"
	    "  dead_peer: 3s\n", "7:14",
	    "timeouts.dead_peer: must be longer than keepalive: '3s'" },
	{ "gw_keepalive_default", GW, GW_BASE "timeouts:\n"
	    "  keepalive: 10s\n", "6:14", "dead_peer is 4s by default" },
	{ "gw_keepalive_default_eq", GW, GW_BASE "timeouts:\n"
	    "  keepalive: 4s\n", "6:14",
	    "timeouts.keepalive: not below dead_peer: '4s'" },
	{ "gw_size_unit", GW, GW_BASE "limits:\n  stream_window: 256KB\n",
	    "6:18", "limits.stream_window: bad size: '256KB'" },
	{ "gw_window_small", GW, GW_BASE "limits:\n  stream_window: 8KiB\n",
	    "6:18", "out of range: '8KiB' (must be between 16KiB and 16MiB)" },
	{ "gw_window_big", GW, GW_BASE "limits:\n  stream_window: 17MiB\n",
	    "6:18", "out of range" },
	{ "gw_hello_small", GW, GW_BASE "limits:\n  hello_bytes: 100\n",
	    "6:16", "out of range: '100' (must be between 512 and 64KiB)" },
	{ "gw_streams_word", GW, GW_BASE "limits:\n"
	    "  streams_per_tunnel: many\n", "6:23", "not a whole number" },
	{ "gw_conns_zero", GW, GW_BASE "limits:\n  max_connections: 0\n",
	    "6:20", "out of range" },
	{ "gw_limits_seq", GW, GW_BASE "limits:\n  - 1\n", "6:3",
	    "limits: expected a mapping, got a sequence" },
	{ "gw_unknown_limit", GW, GW_BASE "limits:\n  retry: 1\n", "6:3",
	    "allowed: hello_bytes, http_head_bytes, streams_per_tunnel, "
	    "stream_window, max_connections, retries, replay_bytes, "
	    "names_per_peer, claims_per_tunnel, connections_per_source, "
	    "handshakes_per_source)" },
	{ "gw_conns_per_source_zero", GW,
	    GW_BASE "limits:\n  connections_per_source: 0\n", "6:27",
	    "limits.connections_per_source: out of range: '0' (must be "
	    "between 1 and 1000000)" },
	{ "gw_handshakes_per_source_high", GW,
	    GW_BASE "limits:\n  handshakes_per_source: 257\n", "6:26",
	    "limits.handshakes_per_source: out of range: '257' (must be "
	    "between 1 and 256)" },
	{ "gw_names_per_peer_zero", GW,
	    GW_BASE "limits:\n  names_per_peer: 0\n", "6:19",
	    "limits.names_per_peer: out of range: '0' (must be between "
	    "1 and 1000000)" },

	/* Gateway: drain, announce, retries, replay. */
	{ "gw_drain_long", GW, GW_BASE "timeouts:\n  drain: 61m\n", "6:10",
	    "timeouts.drain: out of range: '61m' (must be between 0ms and "
	    "1h)" },
	{ "gw_drain_bare_zero", GW, GW_BASE "timeouts:\n  drain: 0\n",
	    "6:10", "timeouts.drain: bad duration: '0' (add a unit" },
	{ "gw_drain_null", GW, GW_BASE "timeouts:\n  drain:\n", "6:9",
	    "timeouts.drain: expected a duration, got nothing" },
	{ "gw_announce_short", GW, GW_BASE "timeouts:\n  announce: 99ms\n",
	    "6:13", "timeouts.announce: out of range: '99ms' (must be between "
	    "100ms and 1m)" },
	{ "gw_announce_long", GW, GW_BASE "timeouts: {announce: 61s}\n",
	    "5:22", "timeouts.announce: out of range: '61s'" },
	{ "gw_announce_zero", GW, GW_BASE "timeouts: {announce: 0s}\n",
	    "5:22", "out of range" },
	{ "gw_retries_high", GW, GW_BASE "limits:\n  retries: 9\n", "6:12",
	    "limits.retries: out of range: '9' (must be between 0 and 8)" },
	{ "gw_retries_negative", GW, GW_BASE "limits:\n  retries: -1\n",
	    "6:12", "limits.retries: not a whole number: '-1'" },
	{ "gw_retries_unit", GW, GW_BASE "limits:\n  retries: 2x\n",
	    "6:12", "not a whole number" },
	{ "gw_replay_big", GW, GW_BASE "limits:\n  replay_bytes: 2MiB\n",
	    "6:17", "limits.replay_bytes: out of range: '2MiB' (must be "
	    "between 0 and 1MiB)" },
	{ "gw_replay_over", GW, GW_BASE "limits:\n  replay_bytes: 1048577\n",
	    "6:17", "out of range" },
	{ "gw_replay_unit", GW, GW_BASE "limits:\n  replay_bytes: 64K\n",
	    "6:17", "limits.replay_bytes: bad size: '64K'" },

	/* Gateway: own name and admin address. */
	{ "gw_name_wildcard", GW, GW_BASE "name: \"*.example.net\"\n",
	    "5:7", "name: bad hostname: '*.example.net' (dot-separated labels "
	    "of letters, digits and '-', no wildcard" },
	{ "gw_name_space", GW, GW_BASE "name: \"gw 1.example.net\"\n", "5:7",
	    "name: bad hostname: 'gw 1.example.net'" },
	{ "gw_name_ip", GW, GW_BASE "name: 192.0.2.1\n", "5:7",
	    "name: not a hostname: '192.0.2.1' (an IP address cannot be sent "
	    "as TLS SNI" },
	{ "gw_name_v6", GW, GW_BASE "name: \"::1\"\n", "5:7",
	    "name: bad hostname: '::1'" },
	{ "gw_name_long_label", GW, GW_BASE "name: " A64 ".example\n", "5:7",
	    "bad hostname" },
	{ "gw_name_list", GW, GW_BASE "name: [gw1.example.net]\n", "5:7",
	    "name: expected a string, got a sequence" },
	{ "gw_name_empty", GW, GW_BASE "name: \"\"\n", "5:7",
	    "name: empty string" },
	{ "gw_admin_hostname", GW, GW_BASE "admin: \"localhost:9900\"\n",
	    "5:8", "admin: bad address: 'localhost:9900' (not a numeric IPv4 "
	    "address; listen addresses are numeric ip:port, e.g. "
	    "'127.0.0.1:9900' or '[::1]:9900')" },
	{ "gw_admin_no_port", GW, GW_BASE "admin: 127.0.0.1\n", "5:8",
	    "admin: bad address: '127.0.0.1' (missing :port" },
	{ "gw_admin_list", GW, GW_BASE "admin: [\"127.0.0.1:9900\"]\n",
	    "5:8", "admin: expected a string, got a sequence" },
	{ "gw_admin_null", GW, GW_BASE "admin: ~\n", "5:8",
	    "admin: expected a string, got nothing" },
	{ "gw_admin_dup", GW, GW_BASE "admin: 127.0.0.1:7443\n", "5:8",
	    "admin: duplicate address: '127.0.0.1:7443' (first at line 4; "
	    "bind each address once)" },
	{ "gw_admin_dup_before", GW, "identity: k\nadmin: \"[::1]:8080\"\n"
	    "listen:\n  http: \"[::1]:8080\"\n  tunnel: 127.0.0.1:7443\n",
	    "4:9", "listen: duplicate address: '[::1]:8080' (first at line 2" },
	{ "gw_listen_dup_file_order", GW, "identity: k\nlisten:\n"
	    "  tunnel: \"127.0.0.1:1\"\n  tls: [\"127.0.0.1:1\"]\n", "4:9",
	    "listen: duplicate address: '127.0.0.1:1' (first at line 3" },

	/* Gateway: peers. */
	{ "gw_peers_map", GW, GW_BASE "peers: {gw2: x}\n", "5:8",
	    "peers: expected a sequence, got a mapping" },
	{ "gw_peer_scalar", GW, GW_BASE "peers:\n  - gw2\n", "6:5",
	    "peers[0]: expected a mapping, got a string: 'gw2'" },
	{ "gw_peer_no_name", GW, GW_BASE "peers:\n"
	    "  - address: gw2.example.net:7443\n    key: " GWK "\n", "6:5",
	    "peers[0]: missing required key: 'name' (add 'name: gw2')" },
	{ "gw_peer_no_address", GW, GW_BASE "peers:\n  - name: gw2\n"
	    "    key: " GWK "\n", "6:5",
	    "peers[0]: missing required key: 'address'" },
	{ "gw_peer_no_key", GW, GW_BASE "peers:\n  - name: gw2\n"
	    "    address: gw2.example.net:7443\n", "6:5",
	    "peers[0]: missing required key: 'key' (pin the peer's public "
	    "key" },
	{ "gw_peer_unknown", GW, GW_BASE "peers:\n"
	    GW_PEER("gw2", "gw2.example.net:7443", GWK) "    hostname: [a]\n",
	    "9:5", "peers[0]: unknown key: 'hostname' (allowed: name, "
	    "address, key, hostnames)" },
	{ "gw_peer_hostnames_scalar", GW, GW_BASE "peers:\n"
	    GW_PEER("gw2", "gw2.example.net:7443", GWK)
	    "    hostnames: {a: b}\n", "9:16",
	    "peers[0].hostnames: expected" },
	{ "gw_peer_hostnames_bad", GW, GW_BASE "peers:\n"
	    GW_PEER("gw2", "gw2.example.net:7443", GWK)
	    "    hostnames: [\"a..example\"]\n", "9:17",
	    "peers[0].hostnames: bad hostname" },
	{ "gw_peer_hostnames_dup", GW, GW_BASE "peers:\n"
	    GW_PEER("gw2", "gw2.example.net:7443", GWK)
	    "    hostnames: [\"*.b.example\", \"*.B.example\"]\n", "9:32",
	    "peers[0].hostnames: duplicate hostname" },
	{ "gw_agent_min_priority_0", GW, GW_BASE "agents:\n"
	    GW_AGENT("a", AGK, "[x.example]") "    min_priority: 0\n", "9:19",
	    "agents[0].min_priority" },
	{ "gw_agent_min_priority_256", GW, GW_BASE "agents:\n"
	    GW_AGENT("a", AGK, "[x.example]") "    min_priority: 256\n", "9:19",
	    "agents[0].min_priority" },
	{ "gw_agent_acme_yes", GW, GW_BASE "agents:\n"
	    GW_AGENT("a", AGK, "[x.example]") "    acme: yes\n", "9:11",
	    "agents[0].acme: not a boolean: 'yes' (write true or false)" },
	{ "gw_peer_bad_name", GW, GW_BASE "peers:\n"
	    GW_PEER("\"gw/2\"", "gw2.example.net:7443", GWK), "6:11",
	    "peers[0].name: bad name: 'gw/2'" },
	{ "gw_peer_no_port", GW, GW_BASE "peers:\n"
	    GW_PEER("gw2", "gw2.example.net", GWK), "7:14",
	    "peers[0].address: bad address: 'gw2.example.net' (missing :port" },
	{ "gw_peer_bad_host", GW, GW_BASE "peers:\n"
	    GW_PEER("gw2", "\"gw 2:7443\"", GWK), "7:14",
	    "peers[0].address: bad address: 'gw 2:7443' (the host is neither" },
	{ "gw_peer_bad_ip", GW, GW_BASE "peers:\n"
	    GW_PEER("gw2", "10.0.0.256:7443", GWK), "7:14",
	    "peers[0].address: bad address" },
	{ "gw_peer_bad_key", GW, GW_BASE "peers:\n"
	    GW_PEER("gw2", "gw2.example.net:7443", "ed25519:AAAA"), "8:10",
	    "peers[0].key: bad public key: 'ed25519:AAAA'" },
	{ "gw_peer_dup_name", GW, GW_BASE "peers:\n"
	    GW_PEER("gw2", "gw2.example.net:7443", GWK)
	    GW_PEER("gw2", "gw3.example.net:7443", ZEROK), "9:11",
	    "peers[1].name: duplicate peer name: 'gw2' (first at line 6; "
	    "give each peer its own name)" },
	{ "gw_peer_dup_key", GW, GW_BASE "peers:\n"
	    GW_PEER("gw2", "gw2.example.net:7443", GWK)
	    GW_PEER("gw3", "gw3.example.net:7443", GWK), "11:10",
	    "peers[1].key: duplicate peer key: '" GWK "' (first at line 8" },
	{ "gw_peer_dup_address", GW, GW_BASE "peers:\n"
	    GW_PEER("gw2", "gw2.example.net:7443", GWK)
	    GW_PEER("gw3", "GW2.Example.net:7443", ZEROK), "10:14",
	    "peers[1].address: duplicate peer address: 'GW2.Example.net:7443' "
	    "(first at line 7" },
	{ "gw_peer_dup_v6", GW, GW_BASE "peers:\n"
	    GW_PEER("gw2", "\"[2001:DB8::1]:7443\"", GWK)
	    GW_PEER("gw3", "\"[2001:db8::1]:7443\"", ZEROK), "10:14",
	    "duplicate peer address" },
	{ "gw_peer_is_agent", GW, GW_BASE "agents:\n"
	    GW_AGENT("home", AGK, "[x.example]") "peers:\n"
	    GW_PEER("gw2", "gw2.example.net:7443", GWK)
	    GW_PEER("gw3", "gw3.example.net:7443", AGK), "15:10",
	    "peers[1].key: also an agent's key: '" AGK "' (agent 'home' at "
	    "line 7 has it; a key is either an agent or a peer)" },
	{ "gw_peer_is_agent_above", GW, GW_BASE "peers:\n"
	    GW_PEER("gw2", "gw2.example.net:7443", AGK) "agents:\n"
	    GW_AGENT("a", ZEROK, "[x.example]") GW_AGENT("b", AGK,
	    "[y.example]"), "8:10",
	    "agent 'b' at line 14 has it; a key is either an agent or a peer" },
	{ "gw_peer_dup_name_first", GW, GW_BASE "peers:\n"
	    GW_PEER("gw2", "gw2.example.net:7443", AGK)
	    GW_PEER("gw2", "gw3.example.net:7443", AGK) "agents:\n"
	    GW_AGENT("a", AGK, "[x.example]"), "9:11",
	    "duplicate peer name" },

	/* Gateway: agents. */
	{ "gw_agent_no_key", GW, GW_BASE "agents:\n  - name: a\n"
	    "    hostnames: [x.example]\n", "6:5",
	    "agents[0]: missing required key: 'key'" },
	{ "gw_agent_no_hosts", GW, GW_BASE "agents:\n  - name: a\n"
	    "    key: " AGK "\n", "6:5", "missing required key: 'hostnames'" },
	{ "gw_agent_bad_key", GW, GW_BASE "agents:\n  - name: a\n"
	    "    key: ed25519:abc\n    hostnames: [x.example]\n", "7:10",
	    "agents[0].key: bad public key: 'ed25519:abc'" },
	{ "gw_agent_bad_name", GW, GW_BASE "agents:\n"
	    GW_AGENT("\"a b\"", AGK, "[x.example]"), "6:11",
	    "agents[0].name: bad name: 'a b'" },
	{ "gw_agent_bad_host", GW, GW_BASE "agents:\n"
	    GW_AGENT("a", AGK, "[x.example, \"bad..host\"]"), "8:28",
	    "agents[0].hostnames: bad hostname: 'bad..host'" },
	{ "gw_agent_mid_wildcard", GW, GW_BASE "agents:\n"
	    GW_AGENT("a", AGK, "[\"a.*.example\"]"), "8:17",
	    "bad hostname" },
	{ "gw_agent_empty_hosts", GW, GW_BASE "agents:\n"
	    GW_AGENT("a", AGK, "[]"), "8:16", "empty list" },
	{ "gw_agent_dup_host", GW, GW_BASE "agents:\n"
	    GW_AGENT("a", AGK, "[x.example, y.example, X.Example.]"), "8:39",
	    "duplicate hostname: 'X.Example.' (first at line 8" },
	{ "gw_agent_dup_name", GW, GW_BASE "agents:\n"
	    GW_AGENT("a", AGK, "[x.example]") GW_AGENT("a", ZEROK,
	    "[y.example]"), "9:11",
	    "agents[1].name: duplicate agent name: 'a' (first at line 6" },
	{ "gw_agent_dup_key", GW, GW_BASE "agents:\n"
	    GW_AGENT("a", AGK, "[x.example]") GW_AGENT("b", AGK,
	    "[y.example]"), "10:10",
	    "agents[1].key: duplicate agent key" },
	{ "gw_agent_unknown", GW, GW_BASE "agents:\n"
	    GW_AGENT("a", AGK, "[x.example]") "    hostname: y\n", "9:5",
	    "allowed: name, key, hostnames, min_priority, acme" },
	{ "gw_agent_scalar", GW, GW_BASE "agents:\n  - alice\n", "6:5",
	    "agents[0]: expected a mapping, got a string: 'alice'" },

	/* Agent. */
	{ "ag_missing_identity", AG, "gateways: []\n", "1:1",
	    "missing required key: 'identity'" },
	{ "ag_missing_services", AG, "identity: a\ngateways:\n"
	    "  - name: gw1\n    address: gw1.example.net:7443\n"
	    "    key: " GWK "\n", "1:1", "missing required key: 'services'" },
	{ "ag_missing_gateways", AG, "identity: a\n", "1:1",
	    "missing required key: 'gateways'" },
	{ "ag_empty_gateways", AG, "identity: a\ngateways: []\n", "2:11",
	    "gateways: empty list" },
	{ "ag_empty_services", AG, "identity: a\ngateways:\n"
	    "  - name: gw1\n    address: gw1.example.net:7443\n"
	    "    key: " GWK "\nservices: []\n", "6:11",
	    "services: empty list" },
	{ "ag_services_scalar", AG, "identity: a\ngateways:\n"
	    "  - name: gw1\n    address: gw1.example.net:7443\n"
	    "    key: " GWK "\nservices: app.example.test\n", "6:11",
	    "services: expected a sequence, got a string" },
	{ "ag_gateway_config", AG, "identity: a\nlisten: {}\n", "2:1",
	    "looks like a porch-gateway config" },
	{ "ag_unknown_top", AG, AG_BASE "servics: []\n", "9:1",
	    "allowed: identity, name, admin, admin_public, gateways, "
	    "reconnect, timeouts, limits, services, acme, dns)" },
	{ "ag_bad_name", AG, "name: \"my host\"\n" AG_BASE, "1:7",
	    "name: bad name: 'my host'" },
	{ "ag_gw_no_port", AG, "identity: a\ngateways:\n"
	    "  - name: gw1\n    address: gw1.example.net\n", "4:14",
	    "gateways[0].address: bad address: 'gw1.example.net' "
	    "(missing :port" },
	{ "ag_gw_bad_host", AG, "identity: a\ngateways:\n"
	    "  - name: gw1\n    address: \"gw_1!.example:7443\"\n", "4:14",
	    "neither an IP address nor a hostname" },
	{ "ag_gw_bad_ip", AG, "identity: a\ngateways:\n"
	    "  - name: gw1\n    address: 300.1.2.3:7443\n", "4:14",
	    "bad address" },
	{ "ag_gw_bad_v6", AG, "identity: a\ngateways:\n"
	    "  - name: gw1\n    address: \"[zz::1]:7443\"\n", "4:14",
	    "not an IPv6 address" },
	{ "ag_gw_no_key", AG, "identity: a\ngateways:\n"
	    "  - name: gw1\n    address: gw1.example.net:7443\n", "3:5",
	    "gateways[0]: missing required key: 'key'" },
	{ "ag_gw_no_name", AG, "identity: a\ngateways:\n"
	    "  - address: gw1.example.net:7443\n", "3:5",
	    "missing required key: 'name'" },
	{ "ag_gw_dup_name", AG, "identity: a\ngateways:\n"
	    "  - {name: gw1, address: \"a.example:1\", key: \"" GWK "\"}\n"
	    "  - {name: gw1, address: \"b.example:1\", key: \"" ZEROK "\"}\n",
	    "4:12", "gateways[1].name: duplicate gateway name: 'gw1' "
	    "(first at line 3" },
	{ "ag_dup_hostname", AG, AG_BASE "  - hostname: APP.example.test\n"
	    "    http: 127.0.0.1:9080\n", "9:15",
	    "services[1].hostname: duplicate hostname: 'APP.example.test' "
	    "(first at line 7" },
	{ "ag_no_backend", AG, AG_BASE "  - hostname: b.example.test\n",
	    "9:5", "services[1]: no backend" },
	{ "ag_backend_no_port", AG, AG_BASE "  - hostname: b.example.test\n"
	    "    tls: 127.0.0.1\n", "10:10",
	    "services[1].tls: bad address: '127.0.0.1'" },
	{ "ag_backend_port_zero", AG, AG_BASE
	    "  - hostname: b.example.test\n    http: \"localhost:0\"\n",
	    "10:11", "port must be a number 1-65535" },
	{ "ag_bad_hostname", AG, AG_BASE "  - hostname: \"bad host\"\n"
	    "    tls: 127.0.0.1:1\n", "9:15", "bad hostname: 'bad host'" },
	{ "ag_proxy_v3", AG, AG_BASE "    proxy_protocol: v3\n", "9:21",
	    "services[0].proxy_protocol: unknown PROXY protocol version: 'v3' "
	    "(use off, v1 or v2)" },
	{ "ag_service_unknown", AG, AG_BASE "    backend: 127.0.0.1:1\n",
	    "9:5", "allowed: hostname, tls, http, h2c, proxy_protocol, "
	    "priority, policy, health, certificate, certificate_names, "
	    "max_connections, dns)" },
	/* dns: */
	{ "ag_dns_no_section", AG, AG_BASE "    dns: true\n", "9:10",
	    "services[0].dns: dns: true needs a DNS server (add a 'dns:' "
	    "section with provider, server, zone and tsig_key)" },
	{ "ag_dns_outside_zone", AG, AG_BASE "    dns: true\n"
	    "dns: {provider: rfc2136, server: 127.0.0.1, zone: example.org, "
	    "tsig_key: k}\n", "9:10", "services[0].dns: app.example.test is "
	    "not in zone example.org (dns.zone): leave dns out for it" },
	{ "ag_dns_no_server", AG, AG_BASE "dns: {provider: rfc2136, "
	    "zone: example.test, tsig_key: k}\n", "9:6", "dns: server "
	    "missing (add the zone's primary server" },
	{ "ag_dns_no_key", AG, AG_BASE "dns: {provider: rfc2136, "
	    "zone: example.test, server: ns1.example.test}\n", "9:6",
	    "dns: tsig_key missing (add the key file 'tsig-keygen" },
	{ "ag_dns_provider", AG, AG_BASE "dns: {provider: route53, "
	    "zone: example.test}\n", "9:17", "dns.provider: unknown provider: "
	    "'route53' (use rfc2136 (dynamic updates signed with a TSIG key) or "
	    "exec" },
	{ "ag_dns_exec_no_command", AG, AG_BASE "dns: {provider: exec, "
	    "zone: example.test}\n", "9:6", "dns: command missing" },
	{ "ag_dns_exec_and_key", AG, AG_BASE "dns: {provider: exec, "
	    "zone: example.test, command: x, tsig_key: k}\n", "9:6",
	    "dns: server and tsig_key are for provider rfc2136" },
	{ "ag_dns_no_zone", AG, AG_BASE "dns: {provider: rfc2136}\n", "9:6",
	    "add the zone the names are in" },
	{ "ag_dns_v6_server", AG, AG_BASE "dns: {provider: rfc2136, "
	    "zone: example.test, server: \"2001:db8::53\", tsig_key: k}\n",
	    "9:54", "dns.server: bad address: '2001:db8::53' (write an IPv6 "
	    "server as '[2001:db8::53]:53')" },
	{ "ag_dns_ttl", AG, AG_BASE "dns: {provider: rfc2136, zone: "
	    "example.test, server: ns1.example.test, tsig_key: k, ttl: 0s}\n",
	    "9:90", "dns.ttl: out of range: '0s' (must be between 1s and 1h)" },
	{ "ag_reconnect_order", AG, AG_BASE "reconnect: {min: 1m, max: 30s}\n",
	    "9:18", "reconnect.min: above reconnect.max: '1m' (max is 30s" },
	{ "ag_reconnect_max_low", AG, AG_BASE "reconnect: {max: 100ms}\n",
	    "9:18", "reconnect.max: below reconnect.min" },
	{ "ag_connect_bare", AG, AG_BASE "timeouts:\n  connect: 5000\n",
	    "10:12", "add a unit: '5000s' for seconds or '5000ms'" },
	{ "ag_dead_peer_low", AG, AG_BASE "timeouts:\n  keepalive: 5s\n"
	    "  dead_peer: 1s\n", "11:14", "must be longer than keepalive" },
	{ "ag_window_bad", AG, AG_BASE "limits: {stream_window: 1GiB}\n",
	    "9:25", "bad size: '1GiB'" },
	{ "ag_limits_unknown", AG, AG_BASE "limits: {hello_bytes: 1}\n",
	    "9:10", "allowed: stream_window, max_streams, gateway_share" },
	{ "ag_max_streams_zero", AG, AG_BASE "limits: {max_streams: 0}\n",
	    "9:23", "limits.max_streams: out of range: '0' (must be between "
	    "1 and 1000000)" },
	{ "ag_gateway_share_high", AG, AG_BASE "limits: {gateway_share: 101}"
	    "\n", "9:25", "limits.gateway_share: out of range: '101' (must "
	    "be between 1 and 100)" },
	{ "ag_max_connections_zero", AG, AG_BASE "    max_connections: 0\n",
	    "9:22", "services[0].max_connections: out of range: '0'" },
	{ "ag_timeouts_unknown", AG, AG_BASE "timeouts: {drian: 1s}\n",
	    "9:12", "timeouts: unknown key: 'drian' (allowed: keepalive, "
	    "dead_peer, connect, drain)" },
	{ "ag_keepalive_default", AG, AG_BASE "timeouts:\n  keepalive: 4s\n",
	    "10:14", "timeouts.keepalive: not below dead_peer: '4s' "
	    "(dead_peer is 4s by default" },

	/* Agent: admin, server_name, drain. */
	{ "ag_admin_hostname", AG, "admin: localhost:9901\n" AG_BASE, "1:8",
	    "admin: bad address: 'localhost:9901' (not a numeric IPv4 "
	    "address; listen addresses are numeric ip:port, e.g. "
	    "'127.0.0.1:9901' or '[::1]:9901')" },
	{ "ag_admin_v6_brackets", AG, "admin: \"::1:9901\"\n" AG_BASE, "1:8",
	    "must be written as [address]:port" },
	{ "ag_admin_map", AG, AG_BASE "admin: {port: 9901}\n", "9:8",
	    "admin: expected a string, got a mapping" },
	/* Off loopback only on purpose: the listener trusts its network. */
	{ "ag_admin_any", AG, AG_BASE "admin: 0.0.0.0:9901\n", "9:8",
	    "admin: not a loopback address: '0.0.0.0:9901' (anyone who can "
	    "reach it reads the status; use '127.0.0.1:9901' or "
	    "'[::1]:9901', or add 'admin_public: true'" },
	{ "ag_admin_any6", AG, AG_BASE "admin: \"[::]:9901\"\n"
	    "admin_public: false\n", "9:8", "add 'admin_public: true'" },
	{ "ag_admin_public_word", AG, AG_BASE "admin_public: yes\n", "9:15",
	    "admin_public: not true or false: 'yes'" },
	{ "gw_admin_any", GW, GW_BASE "admin: 192.0.2.1:9900\n", "5:8",
	    "admin: not a loopback address: '192.0.2.1:9900' (anyone who "
	    "can reach it reads the status; use '127.0.0.1:9900' or "
	    "'[::1]:9900', or add 'admin_public: true'" },
	{ "ag_server_name_wildcard", AG, "identity: a\ngateways:\n"
	    "  - name: gw1\n    address: gw1.example.net:7443\n"
	    "    key: " GWK "\n    server_name: \"*.example.net\"\n", "6:18",
	    "gateways[0].server_name: bad hostname: '*.example.net'" },
	{ "ag_server_name_ip", AG, "identity: a\ngateways:\n"
	    "  - name: gw1\n    address: gw1.example.net:7443\n"
	    "    key: " GWK "\n    server_name: 203.0.113.9\n", "6:18",
	    "gateways[0].server_name: not a hostname: '203.0.113.9' (an IP "
	    "address cannot be sent as TLS SNI" },
	{ "ag_server_name_port", AG, "identity: a\ngateways:\n"
	    "  - {name: gw1, address: \"gw1.example.net:443\", key: \"" GWK
	    "\", server_name: \"gw1.example.net:443\"}\n", "3:123",
	    "gateways[0].server_name: bad hostname: 'gw1.example.net:443'" },
	{ "ag_server_name_null", AG, "identity: a\ngateways:\n"
	    "  - name: gw1\n    address: gw1.example.net:7443\n"
	    "    key: " GWK "\n    server_name:\n", "6:17",
	    "gateways[0].server_name: expected a string, got nothing" },
	{ "ag_gw_unknown", AG, "identity: a\ngateways:\n"
	    "  - name: gw1\n    address: gw1.example.net:7443\n"
	    "    key: " GWK "\n    sni: gw1.example.net\n", "6:5",
	    "gateways[0]: unknown key: 'sni' (allowed: name, address, key, "
	    "server_name)" },
	{ "ag_drain_long", AG, AG_BASE "timeouts: {drain: 2h}\n", "9:19",
	    "timeouts.drain: out of range: '2h' (must be between 0ms and 1h)" },
	{ "ag_drain_bad", AG, AG_BASE "timeouts: {drain: never}\n", "9:19",
	    "timeouts.drain: bad duration: 'never'" },

	/* Agent: priority and policy. */
	{ "ag_priority_zero", AG, AG_BASE "    priority: 0\n", "9:15",
	    "services[0].priority: out of range: '0' (must be between 1 and "
	    "255)" },
	{ "ag_priority_high", AG, AG_BASE "    priority: 256\n", "9:15",
	    "services[0].priority: out of range: '256'" },
	{ "ag_priority_word", AG, AG_BASE "    priority: high\n", "9:15",
	    "services[0].priority: not a whole number: 'high'" },
	{ "ag_priority_list", AG, AG_BASE "    priority: [1]\n", "9:15",
	    "services[0].priority: expected a number, got a sequence" },
	{ "ag_policy_unknown", AG, AG_BASE "    policy: round-robin\n",
	    "9:13", "services[0].policy: unknown policy: 'round-robin' (use "
	    "failover (lowest priority first) or balance)" },
	{ "ag_policy_case", AG, AG_BASE "    policy: Balance\n", "9:13",
	    "unknown policy: 'Balance'" },
	{ "ag_policy_null", AG, AG_BASE "    policy:\n", "9:12",
	    "services[0].policy: expected a string, got nothing" },

	/* Agent: health checks. */
	{ "ag_health_scalar", AG, AG_BASE "    health: tcp\n", "9:13",
	    "services[0].health: expected a mapping, got a string: 'tcp'" },
	{ "ag_health_null", AG, AG_BASE "    health:\n", "9:12",
	    "services[0].health: expected a mapping, got nothing" },
	{ "ag_health_no_check", AG, AG_BASE "    health:\n"
	    "      interval: 5s\n", "10:7",
	    "services[0].health: missing required key: 'check' (add 'check: "
	    "tcp', 'check: tls' or 'check: http')" },
	{ "ag_health_empty_map", AG, AG_BASE "    health: {}\n", "9:13",
	    "missing required key: 'check'" },
	{ "ag_health_unknown", AG, AG_BASE "    health:\n      check: tcp\n"
	    "      retries: 3\n", "11:7",
	    "services[0].health: unknown key: 'retries' (allowed: check, "
	    "interval, timeout, rise, fall, path, expect)" },
	{ "ag_health_bad_check", AG, AG_BASE "    health: {check: udp}\n",
	    "9:21", "services[0].health.check: unknown check: 'udp' (use tcp "
	    "(connect), tls (TLS handshake) or http (GET a path))" },
	{ "ag_health_check_none", AG, AG_BASE "    health: {check: none}\n",
	    "9:21", "unknown check: 'none'" },
	{ "ag_health_check_case", AG, AG_BASE "    health: {check: TCP}\n",
	    "9:21", "unknown check: 'TCP'" },
	{ "ag_health_check_empty", AG, AG_BASE "    health: {check: \"\"}\n",
	    "9:21", "services[0].health.check: empty string" },
	{ "ag_health_tls_no_backend", AG, AG_BASE
	    "  - hostname: b.example.test\n    http: 127.0.0.1:9080\n"
	    "    health: {check: tls}\n", "11:21",
	    "services[1].health.check: no tls backend: 'tls' (a tls check "
	    "handshakes with the service's tls backend; add one or use "
	    "check: tcp)" },
	{ "ag_health_http_no_backend", AG, AG_BASE
	    "    health: {check: http}\n", "9:21",
	    "services[0].health.check: no http backend: 'http' (an http "
	    "check asks the service's http backend" },
	{ "ag_health_interval_short", AG, AG_BASE
	    "    health: {check: tcp, interval: 99ms, timeout: 50ms}\n",
	    "9:36", "services[0].health.interval: out of range: '99ms' (must "
	    "be between 100ms and 1h)" },
	{ "ag_health_interval_long", AG, AG_BASE
	    "    health: {check: tcp, interval: 61m}\n", "9:36",
	    "out of range: '61m'" },
	{ "ag_health_interval_bare", AG, AG_BASE
	    "    health: {check: tcp, interval: 2}\n", "9:36",
	    "services[0].health.interval: bad duration: '2' (add a unit" },
	{ "ag_health_timeout_eq", AG, AG_BASE
	    "    health: {check: tcp, interval: 1s, timeout: 1s}\n", "9:49",
	    "services[0].health.timeout: not below interval: '1s' (interval "
	    "is 1s; a check must end before the next one starts)" },
	{ "ag_health_timeout_long", AG, AG_BASE
	    "    health: {check: tcp, timeout: 3s}\n", "9:35",
	    "services[0].health.timeout: not below interval: '3s' (interval "
	    "is 2s" },
	{ "ag_health_interval_default_timeout", AG, AG_BASE
	    "    health: {check: tcp, interval: 500ms}\n", "9:36",
	    "services[0].health.interval: not above timeout: '500ms' "
	    "(timeout is 1s by default; lengthen interval or set a shorter "
	    "timeout)" },
	{ "ag_health_timeout_zero", AG, AG_BASE
	    "    health: {check: tcp, timeout: 0ms}\n", "9:35",
	    "services[0].health.timeout: out of range: '0ms' (must be between "
	    "1ms and 1h)" },
	{ "ag_health_rise_zero", AG, AG_BASE
	    "    health: {check: tcp, rise: 0}\n", "9:32",
	    "services[0].health.rise: out of range: '0' (must be between 1 "
	    "and 100)" },
	{ "ag_health_fall_high", AG, AG_BASE
	    "    health: {check: tcp, fall: 101}\n", "9:32",
	    "services[0].health.fall: out of range: '101'" },
	{ "ag_health_fall_word", AG, AG_BASE
	    "    health: {check: tcp, fall: two}\n", "9:32",
	    "services[0].health.fall: not a whole number: 'two'" },
	{ "ag_health_path_tcp", AG, AG_BASE
	    "    health: {check: tcp, path: /healthz}\n", "9:32",
	    "services[0].health.path: only for check: http: '/healthz' (this "
	    "check is tcp; remove path or use check: http)" },
	{ "ag_health_expect_tls", AG, AG_BASE
	    "    health:\n      check: tls\n      expect: 204\n", "11:15",
	    "services[0].health.expect: only for check: http: '204' (this "
	    "check is tls; remove expect or use check: http)" },
	{ "ag_health_path_relative", AG, AG_BASE "    http: 127.0.0.1:9080\n"
	    "    health:\n      check: http\n      path: healthz\n", "12:13",
	    "services[0].health.path: bad path: 'healthz' (must start with "
	    "'/', e.g. '/healthz')" },
	{ "ag_health_path_url", AG, AG_BASE "    http: 127.0.0.1:9080\n"
	    "    health:\n      check: http\n"
	    "      path: http://app.example.test/\n", "12:13",
	    "bad path: 'http://app.example.test/' (must start with '/'" },
	{ "ag_health_path_space", AG, AG_BASE "    http: 127.0.0.1:9080\n"
	    "    health:\n      check: http\n      path: \"/a b\"\n", "12:13",
	    "services[0].health.path: bad path: '/a b' (printable ASCII "
	    "without spaces; percent-encode the rest, e.g. '%20')" },
	{ "ag_health_path_tab", AG, AG_BASE "    http: 127.0.0.1:9080\n"
	    "    health:\n      check: http\n      path: \"/a\\tb\"\n",
	    "12:13", "bad path: '/a\\x09b' (printable ASCII" },
	{ "ag_health_path_utf8", AG, AG_BASE "    http: 127.0.0.1:9080\n"
	    "    health:\n      check: http\n      path: \"/caf\xc3\xa9\"\n",
	    "12:13", "services[0].health.path: bad path" },
	{ "ag_health_path_long", AG, AG_BASE "    http: 127.0.0.1:9080\n"
	    "    health:\n      check: http\n      path: " PATH255 "a\n",
	    "12:13", "(at most 255 bytes)" },
	{ "ag_health_path_null", AG, AG_BASE "    http: 127.0.0.1:9080\n"
	    "    health:\n      check: http\n      path:\n", "12:12",
	    "services[0].health.path: expected a string, got nothing" },
	{ "ag_health_expect_low", AG, AG_BASE "    http: 127.0.0.1:9080\n"
	    "    health: {check: http, expect: 99}\n", "10:35",
	    "services[0].health.expect: out of range: '99' (must be between "
	    "100 and 599)" },
	{ "ag_health_expect_high", AG, AG_BASE "    http: 127.0.0.1:9080\n"
	    "    health: {check: http, expect: 600}\n", "10:35",
	    "out of range: '600'" },
	{ "ag_health_expect_text", AG, AG_BASE "    http: 127.0.0.1:9080\n"
	    "    health: {check: http, expect: OK}\n", "10:35",
	    "services[0].health.expect: not a whole number: 'OK'" },
	/* ACME and TLS termination. */
	{ "ag_term_no_http", AG, AG_ACME_SVC "    tls: terminate\n", "12:10",
	    "services[0].tls: terminate needs an http backend: 'terminate'" },
	{ "ag_term_no_acme", AG, AG_NOACME "    tls: terminate\n"
	    "    http: 127.0.0.1:80\n", "7:15", "services[0].hostname: "
	    "tls: terminate needs a certificate: 'app.example.test' (add an "
	    "'acme:' section" },
	{ "ag_cert_no_acme", AG, AG_NOACME "    http: 127.0.0.1:80\n"
	    "    certificate: acme\n", "7:15", "certificate: acme needs a CA" },
	{ "ag_cert_none_term", AG, AG_ACME_SVC "    tls: terminate\n"
	    "    http: 127.0.0.1:80\n    certificate: none\n", "14:18",
	    "tls: terminate needs a certificate: 'none'" },
	{ "ag_cert_unknown", AG, AG_ACME_SVC "    http: 127.0.0.1:80\n"
	    "    certificate: files\n", "13:18",
	    "unknown certificate source: 'files'" },
	{ "ag_cert_wildcard", AG, AG_ACME_HEAD "  - hostname: \"*.example.test\"\n"
	    "    http: 127.0.0.1:80\n    certificate: acme\n", "11:15",
	    "services[0].hostname: no ACME certificate for a wildcard without "
	    "dns-01: '*.example.test' (add dns-01 to acme.challenge" },
	{ "ag_cert_names_wildcard", AG, AG_ACME_SVC "    http: 127.0.0.1:80\n"
	    "    certificate: acme\n    certificate_names: [\"*.w.example.test\"]"
	    "\n", "14:24", "services[0].certificate_names: no ACME certificate "
	    "for a wildcard without dns-01" },
	{ "ag_cert_names_dup", AG, AG_ACME_SVC "    http: 127.0.0.1:80\n"
	    "    certificate: acme\n    certificate_names: [www.example.test, "
	    "www.example.test]\n", "14:43", "certificate_names[1]: duplicate name: 'www.example.test'" },
	{ "ag_cert_names_noacme", AG, AG_ACME_SVC "    http: 127.0.0.1:80\n"
	    "    certificate_names: [www.example.test]\n", "13:24",
	    "services[0].certificate_names: no certificate to put them in (add" },
	{ "ag_h2c_no_term", AG, AG_ACME_SVC "    http: 127.0.0.1:80\n"
	    "    h2c: 127.0.0.1:81\n", "13:10", "h2c: only with tls: terminate" },
	{ "ag_acme_no_tos", AG, AG_ACME_PRE "  agree_tos: false\n" AG_ACME_POST,
	    "8:14", "acme.agree_tos: the CA's terms must be accepted" },
	{ "ag_acme_no_dir", AG, AG_BASE "acme: {agree_tos: true, state_dir: s}\n",
	    "9:7", "acme: missing required key: 'directory'" },
	{ "ag_acme_http_dir", AG, AG_BASE "acme: {directory: \"http://ca/dir\", "
	    "agree_tos: true, state_dir: s}\n", "9:19", "not an https URL" },
	{ "ag_acme_no_state", AG, AG_BASE "acme: {directory: letsencrypt, "
	    "agree_tos: true}\n", "9:7", "acme: missing required key: 'state_dir'" },
	{ "ag_acme_chal", AG, AG_BASE "acme: {directory: letsencrypt, "
	    "agree_tos: true, state_dir: s, challenge: dns-02}\n", "9:74",
	    "unknown challenge type: 'dns-02' (use http-01 (through the "
	    "gateways' port 80), tls-alpn-01 (port 443) or dns-01" },
	{ "ag_acme_caa_no_dns", AG, AG_BASE "acme: {directory: letsencrypt, "
	    "agree_tos: true, state_dir: s, caa_pin: true}\n", "9:72",
	    "acme.caa_pin: the CAA records go through a 'dns:' section with "
	    "provider rfc2136" },
	{ "ag_acme_dns01_no_dns", AG, AG_BASE "acme: {directory: letsencrypt, "
	    "agree_tos: true, state_dir: s, challenge: dns-01}\n", "9:74",
	    "acme.challenge: dns-01 publishes a TXT record: add a 'dns:' "
	    "section" },
	{ "ag_acme_chal_twice", AG, AG_BASE "acme: {directory: letsencrypt, "
	    "agree_tos: true, state_dir: s, challenge: [http-01, http-01]}\n",
	    "9:84", "listed twice: 'http-01'" },
	{ "ag_acme_email", AG, AG_BASE "acme: {directory: letsencrypt, "
	    "agree_tos: true, state_dir: s, email: nobody}\n", "9:70",
	    "not an email address" },
	{ "ag_acme_eab_half", AG, AG_BASE "acme: {directory: letsencrypt, "
	    "agree_tos: true, state_dir: s, eab: {kid: k}}\n", "9:68",
	    "needs both kid and hmac_key" },
	{ "ag_acme_eab_b64", AG, AG_BASE "acme: {directory: letsencrypt, "
	    "agree_tos: true, state_dir: s, eab: {kid: k, hmac_key: \"a b\"}}\n",
	    "9:87", "acme.eab.hmac_key: not base64url" },
	{ "ag_acme_key_type", AG, AG_BASE "acme: {directory: letsencrypt, "
	    "agree_tos: true, state_dir: s, key_type: dsa}\n", "9:73",
	    "unknown key type: 'dsa'" },
	{ "ag_acme_retry", AG, AG_BASE "acme: {directory: letsencrypt, "
	    "agree_tos: true, state_dir: s, retry: {min: 2h, max: 1h}}\n",
	    "9:76", "acme.retry.min: min above max" },
	{ "ag_acme_retry_long", AG, AG_BASE "acme: {directory: letsencrypt, "
	    "agree_tos: true, state_dir: s, retry: {max: 200h}}\n", "9:76",
	    "acme.retry.max: out of range: '200h' (must be between 1s and 168h)" },
	{ "ag_acme_unknown", AG, AG_BASE "acme: {directory: letsencrypt, "
	    "agree_tos: true, state_dir: s, dns: x}\n", "9:63",
	    "acme: unknown key: 'dns'" },
};

static void
check_bad(void **state)
{
	const struct bad	*b = *state;
	struct cfg_gateway	*gw = NULL;
	struct cfg_agent	*a = NULL;
	char			 err[1024], where[64];

	memset(err, 'X', sizeof(err));
	if (b->schema == GW)
		gw = cfg_gateway_parse("t.yaml", b->text, strlen(b->text), err,
		    sizeof(err));
	else
		a = cfg_agent_parse("t.yaml", b->text, strlen(b->text), err,
		    sizeof(err));
	if (gw != NULL || a != NULL) {
		cfg_gateway_free(gw);
		cfg_agent_free(a);
		fail_msg("%s: accepted", b->name);
	}
	snprintf(where, sizeof(where), "t.yaml:%s", b->where);
	if (strncmp(err, where, strlen(where)) != 0 ||
	    strstr(err, b->what) == NULL)
		fail_msg("%s: got \"%s\", want \"%s...%s\"", b->name, err,
		    where, b->what);
}

static struct cfg_gateway *
gw_ok(const char *text)
{
	struct cfg_gateway	*gw;
	char			 err[1024];

	gw = cfg_gateway_parse("t.yaml", text, strlen(text), err, sizeof(err));
	if (gw == NULL)
		fail_msg("rejected: %s", err);
	return gw;
}

static struct cfg_agent *
agent_ok(const char *text)
{
	struct cfg_agent	*a;
	char			 err[1024];

	a = cfg_agent_parse("t.yaml", text, strlen(text), err, sizeof(err));
	if (a == NULL)
		fail_msg("rejected: %s", err);
	return a;
}

/* The repository root, from where this file was compiled. */
static void
example_path(char *buf, size_t len, const char *name)
{
	const char	*src = __FILE__, *p;

	p = strstr(src, "tests/unit/test_cfg.c");
	snprintf(buf, len, "%.*sconfig/examples/%s",
	    p != NULL ? (int)(p - src) : 0, src, name);
}

static void
test_example_gateway(void **state)
{
	struct cfg_gateway	*gw;
	struct sockaddr_in6	*sin6;
	char			 path[512], err[1024], want[600];

	(void)state;
	example_path(path, sizeof(path), "gateway.yaml");
	gw = cfg_gateway_load(path, err, sizeof(err));
	if (gw == NULL)
		fail_msg("%s", err);
	example_path(want, sizeof(want), "gateway.key");
	assert_string_equal(gw->identity, want);
	assert_string_equal(gw->file, path);
	assert_int_equal(gw->ntls, 2);
	assert_string_equal(gw->tls[0].text, "127.0.0.1:8443");
	assert_int_equal(gw->tls[0].ss.ss_family, AF_INET);
	assert_int_equal(gw->tls[1].ss.ss_family, AF_INET6);
	sin6 = (struct sockaddr_in6 *)&gw->tls[1].ss;
	assert_int_equal(ntohs(sin6->sin6_port), 8443);
	assert_int_equal(gw->tls[1].sslen, sizeof(struct sockaddr_in6));
	assert_int_equal(gw->nhttp, 1);
	assert_string_equal(gw->http[0].text, "127.0.0.1:8080");
	assert_int_equal(gw->ntunnel, 1);
	assert_string_equal(gw->tunnel[0].text, "127.0.0.1:7443");
	assert_int_equal(gw->nagents, 1);
	assert_string_equal(gw->agents[0].name, "demo-home");
	assert_int_equal(gw->agents[0].npatterns, 2);
	assert_string_equal(gw->agents[0].patterns[0], "app.example.test");
	assert_string_equal(gw->agents[0].patterns[1], "*.example.test");
	assert_int_equal(gw->stream_window, 1024 * 1024);
	/* New keys: the demo is one gateway, so name, admin, peers unset. */
	assert_null(gw->name);
	assert_null(gw->admin);
	assert_int_equal(gw->npeers, 0);
	assert_int_equal(gw->keepalive_ms, 1000);
	assert_int_equal(gw->dead_peer_ms, 4000);
	assert_int_equal(gw->drain_ms, 30000);
	assert_int_equal(gw->announce_ms, 2000);
	assert_int_equal(gw->retries, 2);
	assert_int_equal(gw->replay_max, 64 * 1024);
	/* 0: the gateway takes a quarter of its visitors' cap. */
	assert_int_equal(gw->connections_per_source, 0);
	assert_int_equal(gw->handshakes_per_source, 16);
	cfg_gateway_free(gw);
}

static void
test_example_agent(void **state)
{
	struct cfg_agent	*a;
	char			 path[512], err[1024], want[600];

	(void)state;
	example_path(path, sizeof(path), "agent.yaml");
	a = cfg_agent_load(path, err, sizeof(err));
	if (a == NULL)
		fail_msg("%s", err);
	example_path(want, sizeof(want), "agent.key");
	assert_string_equal(a->identity, want);
	assert_string_equal(a->name, "demo-home");
	assert_int_equal(a->ngateways, 1);
	assert_string_equal(a->gateways[0].name, "gw1");
	assert_string_equal(a->gateways[0].host, "127.0.0.1");
	assert_int_equal(a->gateways[0].port, 7443);
	assert_int_equal(a->nservices, 1);
	assert_string_equal(a->services[0].hostname, "app.example.test");
	assert_string_equal(a->services[0].tls_backend, "127.0.0.1:9443");
	assert_string_equal(a->services[0].http_backend, "127.0.0.1:9080");
	assert_int_equal(a->services[0].proxy_protocol, CFG_PROXY_OFF);
	assert_null(a->admin);
	assert_null(a->gateways[0].server_name);
	assert_int_equal(a->keepalive_ms, 1000);
	assert_int_equal(a->dead_peer_ms, 4000);
	assert_int_equal(a->drain_ms, 10000);
	assert_int_equal(a->services[0].priority, 100);
	assert_int_equal(a->services[0].policy, CFG_POLICY_FAILOVER);
	assert_int_equal(a->services[0].health.check, CFG_CHECK_NONE);
	cfg_agent_free(a);
}

static void
test_gateway_defaults(void **state)
{
	struct cfg_gateway	*gw;

	(void)state;
	gw = gw_ok(GW_BASE);
	assert_string_equal(gw->identity, "gw.key");	/* _parse: as is */
	assert_string_equal(gw->file, "t.yaml");
	assert_int_equal(gw->ntls, 1);
	assert_int_equal(gw->nhttp, 0);
	assert_null(gw->http);
	assert_int_equal(gw->ntunnel, 1);
	assert_int_equal(gw->hello_timeout_ms, 5000);
	assert_int_equal(gw->keepalive_ms, 1000);
	assert_int_equal(gw->dead_peer_ms, 4000);
	assert_int_equal(gw->handshake_timeout_ms, 10000);
	assert_int_equal(gw->hello_max, 16384);
	assert_int_equal(gw->http_head_max, 8192);
	assert_int_equal(gw->streams_per_tunnel, 4096);
	assert_int_equal(gw->stream_window, 1024 * 1024);
	assert_int_equal(gw->max_connections, 20000);
	assert_int_equal(gw->drain_ms, 30000);
	assert_int_equal(gw->announce_ms, 2000);
	assert_int_equal(gw->retries, 2);
	assert_int_equal(gw->replay_max, 64 * 1024);
	assert_int_equal(gw->nagents, 0);
	assert_null(gw->agents);
	assert_null(gw->name);		/* the daemon fills it in */
	assert_null(gw->admin);
	assert_int_equal(gw->npeers, 0);
	assert_null(gw->peers);
	cfg_gateway_free(gw);

	/* An empty agents list is allowed: nobody may connect. */
	gw = gw_ok(GW_BASE "agents: []\n");
	assert_int_equal(gw->nagents, 0);
	cfg_gateway_free(gw);

	/* So is an empty peers list: a gateway on its own. */
	gw = gw_ok(GW_BASE "peers: []\n");
	assert_int_equal(gw->npeers, 0);
	assert_null(gw->peers);
	cfg_gateway_free(gw);

	/* keepalive just below the default dead_peer, and the reverse. */
	gw = gw_ok(GW_BASE "timeouts: {keepalive: 3999ms}\n");
	assert_int_equal(gw->dead_peer_ms, 4000);
	cfg_gateway_free(gw);
	gw = gw_ok(GW_BASE "timeouts: {dead_peer: 1001ms}\n");
	assert_int_equal(gw->keepalive_ms, 1000);
	cfg_gateway_free(gw);
}

static void
test_agent_defaults(void **state)
{
	struct cfg_agent	*a;

	(void)state;
	a = agent_ok(AG_BASE);
	assert_string_equal(a->identity, "agent.key");
	assert_null(a->name);
	assert_int_equal(a->reconnect_min_ms, 500);
	assert_int_equal(a->reconnect_max_ms, 30000);
	assert_int_equal(a->keepalive_ms, 1000);
	assert_int_equal(a->dead_peer_ms, 4000);
	assert_int_equal(a->connect_timeout_ms, 5000);
	assert_int_equal(a->drain_ms, 10000);
	assert_int_equal(a->stream_window, 1024 * 1024);
	assert_int_equal(a->max_streams, 4096);
	assert_int_equal(a->gateway_share, 0);
	assert_null(a->admin);
	assert_int_equal(a->admin_public, 0);
	assert_int_equal(a->services[0].max_connections, 1024);
	assert_string_equal(a->gateways[0].address, "gw1.example.net:7443");
	assert_string_equal(a->gateways[0].host, "gw1.example.net");
	assert_int_equal(a->gateways[0].port, 7443);
	assert_null(a->gateways[0].server_name);
	assert_null(a->services[0].http_backend);
	assert_int_equal(a->services[0].proxy_protocol, CFG_PROXY_OFF);
	assert_int_equal(a->services[0].priority, 100);
	assert_int_equal(a->services[0].policy, CFG_POLICY_FAILOVER);
	/* No health section: always up, every other field zero. */
	assert_int_equal(a->services[0].health.check, CFG_CHECK_NONE);
	assert_int_equal(a->services[0].health.interval_ms, 0);
	assert_int_equal(a->services[0].health.timeout_ms, 0);
	assert_int_equal(a->services[0].health.rise, 0);
	assert_int_equal(a->services[0].health.fall, 0);
	assert_null(a->services[0].health.path);
	assert_int_equal(a->services[0].health.expect, 0);
	cfg_agent_free(a);

	/* keepalive just below the default dead_peer. */
	a = agent_ok(AG_BASE "timeouts: {keepalive: 3999ms}\n");
	assert_int_equal(a->dead_peer_ms, 4000);
	cfg_agent_free(a);
}

static void
test_gateway_values(void **state)
{
	struct cfg_gateway	*gw;
	uint8_t			 zero[32];

	(void)state;
	gw = gw_ok("identity: /etc/porch/gw.key\n"
	    "listen:\n"
	    "  http: \"[::]:80\"\n"
	    "  tunnel:\n"
	    "    - 0.0.0.0:7443\n"
	    "    - \"[::]:7443\"\n"
	    "timeouts: {hello: 250ms, handshake: 1m, keepalive: 1s, "
	    "dead_peer: 1h}\n"
	    "limits:\n"
	    "  hello_bytes: 64KiB\n"
	    "  http_head_bytes: \"4096\"\n"
	    "  streams_per_tunnel: 10\n"
	    "  stream_window: 2MiB\n"
	    "  max_connections: 1000000\n"
	    "agents:\n"
	    GW_AGENT("alice-home", AGK, "\"*.Alice.Example.\"")
	    GW_AGENT("bob_2.x", ZEROK, "[b.example, c.example]"));
	assert_string_equal(gw->identity, "/etc/porch/gw.key");
	assert_int_equal(gw->ntls, 0);
	assert_int_equal(gw->nhttp, 1);
	assert_int_equal(gw->http[0].ss.ss_family, AF_INET6);
	assert_int_equal(gw->ntunnel, 2);
	assert_string_equal(gw->tunnel[1].text, "[::]:7443");
	assert_int_equal(gw->hello_timeout_ms, 250);
	assert_int_equal(gw->handshake_timeout_ms, 60000);
	assert_int_equal(gw->keepalive_ms, 1000);
	assert_int_equal(gw->dead_peer_ms, 3600000);
	assert_int_equal(gw->hello_max, 65536);
	assert_int_equal(gw->http_head_max, 4096);
	assert_int_equal(gw->streams_per_tunnel, 10);
	assert_int_equal(gw->stream_window, 2 * 1024 * 1024);
	assert_int_equal(gw->max_connections, 1000000);
	assert_int_equal(gw->nagents, 2);
	assert_string_equal(gw->agents[0].name, "alice-home");
	assert_int_equal(gw->agents[0].npatterns, 1);
	assert_string_equal(gw->agents[0].patterns[0], "*.alice.example");
	assert_int_equal(gw->agents[0].key[0], 0x10);	/* "EL..." */
	memset(zero, 0, sizeof(zero));
	assert_memory_equal(gw->agents[1].key, zero, sizeof(zero));
	assert_int_equal(gw->agents[1].npatterns, 2);
	assert_string_equal(gw->agents[1].patterns[1], "c.example");
	cfg_gateway_free(gw);
}

static void
test_agent_values(void **state)
{
	struct cfg_agent	*a;

	(void)state;
	a = agent_ok("identity: agent.key\n"
	    "name: alice-home\n"
	    "gateways:\n"
	    "  - name: gw1\n"
	    "    address: \"[2001:db8::1]:443\"\n"
	    "    key: " GWK "\n"
	    "  - name: gw2\n"
	    "    address: 192.0.2.7:7443\n"
	    "    key: " ZEROK "\n"
	    "reconnect: {min: 1s, max: 1s}\n"
	    "timeouts: {keepalive: 500ms, dead_peer: 2s, connect: 3s}\n"
	    "limits: {stream_window: 16KiB, max_streams: 100, "
	    "gateway_share: 30}\n"
	    "admin: 192.0.2.1:9901\n"
	    "admin_public: true\n"
	    "services:\n"
	    "  - hostname: \"*.Alice.example\"\n"
	    "    http: localhost:8080\n"
	    "    proxy_protocol: v1\n"
	    "    max_connections: 2\n"
	    "  - hostname: app.alice.example.\n"
	    "    tls: \"[::1]:8443\"\n"
	    "    proxy_protocol: \"v2\"\n");
	assert_string_equal(a->name, "alice-home");
	assert_int_equal(a->ngateways, 2);
	assert_string_equal(a->gateways[0].host, "2001:db8::1");
	assert_int_equal(a->gateways[0].port, 443);
	assert_string_equal(a->gateways[0].address, "[2001:db8::1]:443");
	assert_string_equal(a->gateways[1].host, "192.0.2.7");
	assert_int_equal(a->reconnect_min_ms, 1000);
	assert_int_equal(a->reconnect_max_ms, 1000);
	assert_int_equal(a->keepalive_ms, 500);
	assert_int_equal(a->dead_peer_ms, 2000);
	assert_int_equal(a->connect_timeout_ms, 3000);
	assert_int_equal(a->stream_window, 16 * 1024);
	assert_int_equal(a->max_streams, 100);
	assert_int_equal(a->gateway_share, 30);
	assert_int_equal(a->admin_public, 1);
	assert_string_equal(a->admin->text, "192.0.2.1:9901");
	assert_int_equal(a->services[0].max_connections, 2);
	assert_int_equal(a->services[1].max_connections, 1024);
	assert_int_equal(a->nservices, 2);
	assert_string_equal(a->services[0].hostname, "*.alice.example");
	assert_null(a->services[0].tls_backend);
	assert_string_equal(a->services[0].http_backend, "localhost:8080");
	assert_int_equal(a->services[0].proxy_protocol, CFG_PROXY_V1);
	assert_string_equal(a->services[1].hostname, "app.alice.example");
	assert_string_equal(a->services[1].tls_backend, "[::1]:8443");
	assert_int_equal(a->services[1].proxy_protocol, CFG_PROXY_V2);
	cfg_agent_free(a);
}

static void
test_gateway_cluster(void **state)
{
	struct cfg_gateway	*gw;
	struct sockaddr_in6	*sin6;
	uint8_t			 zero[32];

	(void)state;
	gw = gw_ok(GW_BASE
	    "name: GW1.Example.NET.\n"
	    "admin: \"[::1]:9900\"\n"
	    "timeouts: {drain: 0s, announce: 100ms}\n"
	    "limits: {retries: 8, replay_bytes: 1MiB}\n"
	    "agents:\n"
	    GW_AGENT("gw2", AGK, "[x.example]")
	    "peers:\n"
	    /* A peer may share an agent's name: they are different lists. */
	    GW_PEER("gw2", "GW2.example.net:7443", GWK)
	    GW_PEER("gw3_b", "\"[2001:db8::3]:443\"", ZEROK)
	    /* Same host, another port: another gateway. */
	    GW_PEER("gw4", "gw2.example.net:7444",
	    "ed25519:AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
	assert_string_equal(gw->name, "gw1.example.net");
	assert_non_null(gw->admin);
	assert_string_equal(gw->admin->text, "[::1]:9900");
	assert_int_equal(gw->admin->ss.ss_family, AF_INET6);
	sin6 = (struct sockaddr_in6 *)&gw->admin->ss;
	assert_int_equal(ntohs(sin6->sin6_port), 9900);
	assert_int_equal(gw->admin->sslen, sizeof(struct sockaddr_in6));
	assert_int_equal(gw->drain_ms, 0);
	assert_int_equal(gw->announce_ms, 100);
	assert_int_equal(gw->retries, 8);
	assert_int_equal(gw->replay_max, 1024 * 1024);
	assert_int_equal(gw->npeers, 3);
	assert_string_equal(gw->peers[0].name, "gw2");
	assert_string_equal(gw->peers[0].address, "GW2.example.net:7443");
	assert_string_equal(gw->peers[0].host, "GW2.example.net");
	assert_int_equal(gw->peers[0].port, 7443);
	assert_int_equal(gw->peers[0].key[0], 0xb5);	/* "tW..." */
	assert_string_equal(gw->peers[1].name, "gw3_b");
	assert_string_equal(gw->peers[1].address, "[2001:db8::3]:443");
	assert_string_equal(gw->peers[1].host, "2001:db8::3");
	assert_int_equal(gw->peers[1].port, 443);
	memset(zero, 0, sizeof(zero));
	assert_memory_equal(gw->peers[1].key, zero, sizeof(zero));
	assert_int_equal(gw->peers[2].port, 7444);
	assert_int_equal(gw->peers[2].key[0], 0x01);
	/* No 'hostnames': believed for nothing (the gateway warns). */
	assert_int_equal(gw->peers[0].has_hostnames, 0);
	assert_int_equal(gw->peers[0].npatterns, 0);
	/* An agent's grant without bounds: any priority, ACME allowed. */
	assert_int_equal(gw->agents[0].min_priority, 1);
	assert_int_equal(gw->agents[0].acme, 1);
	cfg_gateway_free(gw);

	/* Peers' grants, and agents' bounds. */
	gw = gw_ok(GW_BASE
	    "agents:\n"
	    GW_AGENT("a", AGK, "[x.example]")
	    "    min_priority: 255\n"
	    "    acme: false\n"
	    "peers:\n"
	    GW_PEER("gw2", "gw2.example.net:7443", GWK)
	    "    hostnames: [\"*.B.example\", \"shop.example\"]\n"
	    GW_PEER("gw3", "gw3.example.net:7443", ZEROK)
	    "    hostnames: []\n");
	assert_int_equal(gw->agents[0].min_priority, 255);
	assert_int_equal(gw->agents[0].acme, 0);
	assert_int_equal(gw->peers[0].has_hostnames, 1);
	assert_int_equal(gw->peers[0].npatterns, 2);
	assert_string_equal(gw->peers[0].patterns[0], "*.b.example");
	assert_string_equal(gw->peers[0].patterns[1], "shop.example");
	assert_int_equal(gw->peers[1].has_hostnames, 1);
	assert_int_equal(gw->peers[1].npatterns, 0);
	assert_null(gw->peers[1].patterns);
	cfg_gateway_free(gw);

	/* The other ends of the ranges; a name may be one label. */
	gw = gw_ok(GW_BASE
	    "name: gateway\n"
	    "admin: 127.0.0.1:9900\n"
	    "timeouts: {drain: 1h, announce: 1m}\n"
	    "limits: {retries: 0, replay_bytes: 0, connections_per_source: 1,"
	    " handshakes_per_source: 256}\n"
	    "peers:\n"
	    GW_PEER("p", "192.0.2.1:7443", AGK));
	assert_string_equal(gw->name, "gateway");
	assert_int_equal(gw->admin->ss.ss_family, AF_INET);
	assert_int_equal(gw->drain_ms, 3600000);
	assert_int_equal(gw->announce_ms, 60000);
	assert_int_equal(gw->retries, 0);
	assert_int_equal(gw->replay_max, 0);
	assert_int_equal(gw->connections_per_source, 1);
	assert_int_equal(gw->handshakes_per_source, 256);
	assert_int_equal(gw->npeers, 1);
	assert_string_equal(gw->peers[0].host, "192.0.2.1");
	cfg_gateway_free(gw);
}

static void
test_agent_replicas(void **state)
{
	struct cfg_agent	*a;
	struct cfg_health	*h;

	(void)state;
	a = agent_ok("identity: agent.key\n"
	    "admin: 127.0.0.1:9901\n"
	    "gateways:\n"
	    "  - name: gw1\n"
	    "    address: 192.0.2.1:443\n"
	    "    key: " GWK "\n"
	    "    server_name: GW1.Example.net.\n"
	    "  - name: gw2\n"
	    "    address: gw2.example.net:7443\n"
	    "    key: " ZEROK "\n"
	    "timeouts: {drain: 0ms}\n"
	    "services:\n"
	    "  - hostname: a.example\n"
	    "    tls: 127.0.0.1:1\n"
	    "    http: 127.0.0.1:2\n"
	    "    priority: 1\n"
	    "    policy: balance\n"
	    "    health: {check: tcp}\n"
	    "  - hostname: b.example\n"
	    "    http: 127.0.0.1:2\n"
	    "    priority: 255\n"
	    "    policy: failover\n"
	    "    health: {check: http}\n"
	    "  - hostname: c.example\n"
	    "    tls: 127.0.0.1:1\n"
	    "    health:\n"
	    "      check: tls\n"
	    "      interval: 1h\n"
	    "      timeout: 59m\n"
	    "      rise: 1\n"
	    "      fall: 100\n"
	    "  - hostname: d.example\n"
	    "    http: 127.0.0.1:2\n"
	    "    health:\n"
	    "      fall: 3\n"
	    "      expect: 599\n"
	    "      path: /healthz?full=1&x=%20\n"
	    "      check: http\n"
	    "      interval: 100ms\n"
	    "      timeout: 99ms\n"
	    "  - hostname: e.example\n"
	    "    http: 127.0.0.1:2\n"
	    "    health: {check: http, expect: 100, path: \"" PATH255 "\"}\n");
	assert_non_null(a->admin);
	assert_string_equal(a->admin->text, "127.0.0.1:9901");
	assert_int_equal(a->admin->ss.ss_family, AF_INET);
	assert_string_equal(a->gateways[0].server_name, "gw1.example.net");
	assert_null(a->gateways[1].server_name);
	assert_int_equal(a->drain_ms, 0);
	assert_int_equal(a->nservices, 5);

	assert_int_equal(a->services[0].priority, 1);
	assert_int_equal(a->services[0].policy, CFG_POLICY_BALANCE);
	h = &a->services[0].health;
	assert_int_equal(h->check, CFG_CHECK_TCP);
	assert_int_equal(h->interval_ms, 2000);
	assert_int_equal(h->timeout_ms, 1000);
	assert_int_equal(h->rise, 2);
	assert_int_equal(h->fall, 2);
	assert_null(h->path);		/* path and expect: http only */
	assert_int_equal(h->expect, 0);

	assert_int_equal(a->services[1].priority, 255);
	assert_int_equal(a->services[1].policy, CFG_POLICY_FAILOVER);
	h = &a->services[1].health;
	assert_int_equal(h->check, CFG_CHECK_HTTP);
	assert_int_equal(h->interval_ms, 2000);
	assert_int_equal(h->timeout_ms, 1000);
	assert_string_equal(h->path, "/");
	assert_int_equal(h->expect, 200);

	assert_int_equal(a->services[2].priority, 100);
	h = &a->services[2].health;
	assert_int_equal(h->check, CFG_CHECK_TLS);
	assert_int_equal(h->interval_ms, 3600000);
	assert_int_equal(h->timeout_ms, 59 * 60000);
	assert_int_equal(h->rise, 1);
	assert_int_equal(h->fall, 100);
	assert_null(h->path);

	h = &a->services[3].health;
	assert_int_equal(h->check, CFG_CHECK_HTTP);
	assert_int_equal(h->interval_ms, 100);
	assert_int_equal(h->timeout_ms, 99);
	assert_int_equal(h->rise, 2);
	assert_int_equal(h->fall, 3);
	assert_string_equal(h->path, "/healthz?full=1&x=%20");
	assert_int_equal(h->expect, 599);

	h = &a->services[4].health;
	assert_int_equal(strlen(h->path), 255);
	assert_int_equal(h->expect, 100);
	cfg_agent_free(a);
}

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE	*f;

	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
test_load_files(void **state)
{
	struct cfg_gateway	*gw;
	struct cfg_agent	*a;
	char			 dir[] = "/tmp/test_cfg.XXXXXX";
	char			 path[256], want[512], err[1024], text[1024];
	char			*big;

	(void)state;
	assert_non_null(mkdtemp(dir));

	/* Relative identity: next to the config. */
	snprintf(path, sizeof(path), "%s/gw.yaml", dir);
	write_file(path, GW_BASE, strlen(GW_BASE));
	assert_non_null(gw = cfg_gateway_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s/gw.key", dir);
	assert_string_equal(gw->identity, want);
	assert_string_equal(gw->file, path);
	cfg_gateway_free(gw);

	/* Absolute identity: untouched. */
	snprintf(path, sizeof(path), "%s/agent.yaml", dir);
	/* AG_BASE with its first line, "identity: agent.key", replaced. */
	snprintf(text, sizeof(text), "identity: /var/lib/porch/agent.key\n%s",
	    strchr(AG_BASE, '\n') + 1);
	write_file(path, text, strlen(text));
	assert_non_null(a = cfg_agent_load(path, err, sizeof(err)));
	assert_string_equal(a->identity, "/var/lib/porch/agent.key");
	cfg_agent_free(a);

	/* Errors carry the path as given. */
	snprintf(path, sizeof(path), "%s/bad.yaml", dir);
	write_file(path, GW_BASE "timeouts: {hello: 5}\n",
	    strlen(GW_BASE "timeouts: {hello: 5}\n"));
	assert_null(cfg_gateway_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:5:19: timeouts.hello: bad duration",
	    path);
	assert_memory_equal(err, want, strlen(want));
	unlink(path);

	/* Missing, a directory, too large. */
	snprintf(path, sizeof(path), "%s/none.yaml", dir);
	assert_null(cfg_gateway_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, "No such file"));
	assert_null(cfg_agent_load(dir, err, sizeof(err)));
	assert_non_null(strstr(err, "is a directory"));
	big = calloc(1, 1024 * 1024 + 1);
	assert_non_null(big);
	memset(big, '#', 1024 * 1024);
	snprintf(path, sizeof(path), "%s/big.yaml", dir);
	write_file(path, big, 1024 * 1024 + 1);
	assert_null(cfg_gateway_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, "too large"));
	unlink(path);
	/* Exactly 1 MiB is fine (and empty, since it is all comment). */
	write_file(path, big, 1024 * 1024);
	assert_null(cfg_gateway_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, "empty configuration"));
	free(big);
	unlink(path);

	snprintf(path, sizeof(path), "%s/gw.yaml", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/agent.yaml", dir);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

/* Small and NULL error buffers must not overflow or crash. */
static void
test_small_err(void **state)
{
	char	err[16];

	(void)state;
	memset(err, 'X', sizeof(err));
	assert_null(cfg_gateway_parse("a-rather-long-file-name.yaml", "x: [",
	    4, err, 8));
	assert_int_equal(err[7], '\0');
	assert_int_equal(err[8], 'X');
	assert_null(cfg_agent_parse(NULL, "x: 1\n", 5, NULL, 0));
	/* Not NUL-terminated input: only len bytes are read. */
	assert_null(cfg_gateway_parse("t", GW_BASE "lisen", strlen(GW_BASE) + 2,
	    err, sizeof(err)));
}

int
main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_example_gateway),
		cmocka_unit_test(test_example_agent),
		cmocka_unit_test(test_gateway_defaults),
		cmocka_unit_test(test_agent_defaults),
		cmocka_unit_test(test_gateway_values),
		cmocka_unit_test(test_agent_values),
		cmocka_unit_test(test_gateway_cluster),
		cmocka_unit_test(test_agent_replicas),
		cmocka_unit_test(test_load_files),
		cmocka_unit_test(test_small_err),
	};
	struct CMUnitTest	*bad;
	size_t			 i, n;
	int			 rc;

	n = sizeof(bad_configs) / sizeof(bad_configs[0]);
	bad = calloc(n, sizeof(*bad));
	if (bad == NULL)
		return 1;
	for (i = 0; i < n; i++) {
		bad[i].name = bad_configs[i].name;
		bad[i].test_func = check_bad;
		bad[i].initial_state = (void *)(uintptr_t)&bad_configs[i];
	}
	rc = cmocka_run_group_tests_name("cfg", fixed, NULL, NULL);
	rc |= _cmocka_run_group_tests("cfg_bad", bad, n, NULL, NULL);
	free(bad);
	return rc;
}
