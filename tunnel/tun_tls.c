/* SPDX-License-Identifier: ISC */
/*
 * TLS for the tunnel.  TLS 1.3 gives the tunnel confidentiality and a
 * per-session exporter; identity is proved afterwards by signing that
 * exporter with the Ed25519 keys (tun_hello.c), so the gateway's
 * certificate is a throwaway self-signed one and nobody verifies it.  A
 * man in the middle would hold two sessions with two different exporters
 * and could not replay either side's signature.
 */

#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tun.h"

static int	tun_tls_alpn_cb(SSL *, const unsigned char **, unsigned char *,
		    const unsigned char *, unsigned int, void *);
static void	tun_tls_err(char *, size_t, const char *);
static void	tun_tls_read_ahead(SSL_CTX *);

static const unsigned char tun_alpn_wire[] = "\x07porch/1";

/*
 * Every tunnel byte is encrypted twice (the visitor's TLS inside, ours
 * outside), so the cipher is a large share of the daemons' CPU: AES-128
 * is some 15 % faster than OpenSSL's default AES-256 with AES-NI, and
 * 128-bit keys are ample for a link re-keyed at each connection.
 */
#define TUN_TLS_SUITES	"TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:" \
			"TLS_AES_256_GCM_SHA384"

/* Each record in one read, not two (header, then body).  Over a socket
 * our read BIO (tun_rbio_new) hands OpenSSL one record per read; over a
 * filter (the TLS entry) OpenSSL reads libevent's buffer 64 KiB at a
 * time.  tun.c takes the records libevent leaves. */
static void
tun_tls_read_ahead(SSL_CTX *ctx)
{
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);
}

SSL_CTX *
tun_tls_server_ctx(char *err, size_t errlen)
{
	SSL_CTX		*ctx = NULL;
	EVP_PKEY	*pkey = NULL;
	X509		*x = NULL;
	X509_NAME	*n;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	/* A peer that vanishes without close_notify is a lost tunnel, not
	 * a TLS error (libevent 2.1 misreads OpenSSL 3's report of it). */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET |
	    SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_alpn_select_cb(ctx, tun_tls_alpn_cb, NULL);
	if (SSL_CTX_set_ciphersuites(ctx, TUN_TLS_SUITES) != 1)
		goto fail;
	tun_tls_read_ahead(ctx);

	if ((pkey = EVP_EC_gen("P-256")) == NULL)
		goto fail;
	if ((x = X509_new()) == NULL)
		goto fail;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 86400);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"porch-tunnel", -1, -1, 0);
	X509_set_issuer_name(x, n);
	X509_set_pubkey(x, pkey);
	if (X509_sign(x, pkey, EVP_sha256()) == 0)
		goto fail;
	if (SSL_CTX_use_certificate(ctx, x) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, pkey) != 1)
		goto fail;
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ctx;
fail:
	tun_tls_err(err, errlen, "tunnel TLS server setup");
	X509_free(x);
	EVP_PKEY_free(pkey);
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
tun_tls_client_ctx(char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tun_tls_err(err, errlen, "tunnel TLS client setup");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Identity is the Ed25519 exporter signature, not the certificate. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	tun_tls_read_ahead(ctx);
	if (SSL_CTX_set_ciphersuites(ctx, TUN_TLS_SUITES) != 1 ||
	    SSL_CTX_set_alpn_protos(ctx, tun_alpn_wire,
	    sizeof(tun_alpn_wire) - 1) != 0) {
		tun_tls_err(err, errlen, "tunnel ALPN");
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int
tun_tls_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char	*sel;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&sel, outlen, tun_alpn_wire,
	    sizeof(tun_alpn_wire) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static void
tun_tls_err(char *err, size_t errlen, const char *what)
{
	unsigned long	e = ERR_get_error();
	char		buf[256];

	ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s: %s", what, e ? buf : "failed");
	ERR_clear_error();
}
