/* tun_bio.h: a write BIO that gathers a tunnel's TLS records. */
#ifndef PORCH_TUN_BIO_H
#define PORCH_TUN_BIO_H

#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/bio.h>

/*
 * A BIO for the write side of a tunnel's SSL over socket fd.  OpenSSL
 * hands it one record (at most 16 KiB) at a time; written straight
 * through, each is one send(), one TCP segment and one wakeup of the
 * peer.  This BIO keeps the records of one loop pass and sends them
 * together at the end of the pass, waiting for the socket itself when it
 * is full.
 *
 * It takes every record at once and never asks OpenSSL to retry a
 * write, so SSL_write() on it never blocks: the caller bounds what it
 * writes by tun_bio_pending().  (BIO_flush, which OpenSSL calls after
 * handshake flights, does ask for a retry while bytes are left.)
 *
 * The BIO belongs to the SSL (SSL_set_bio) and is freed with it; it does
 * not close fd.  It answers BIO_get_fd(), so libevent's
 * bufferevent_openssl_socket_new() takes fd from it.  Returns NULL when
 * out of memory.
 */
BIO	*tun_bio_new(struct event_base *, int fd);

/*
 * Write buf to socket fd until it is empty or the socket is full (also
 * used for a stream's local socket).  Returns 0 when all is written, 1
 * when the socket is full, -1 on error with errno set (EPIPE for a peer
 * that closed).
 */
int	 tun_bio_write_fd(struct evbuffer *buf, int fd);

/* Bytes held, not yet in the socket. */
size_t	 tun_bio_pending(BIO *);

/* Call cb(arg) from the loop each time the held bytes have all reached
 * the socket (and, with a lowat, the kernel holds fewer than lowat of
 * them unsent); cb NULL to stop. */
void	 tun_bio_set_drained(BIO *, void (*cb)(void *), void *arg);

/* The socket's TCP_NOTSENT_LOWAT: the drained callback waits until the
 * kernel's unsent bytes are below it (0: do not wait). */
void	 tun_bio_set_lowat(BIO *, size_t);

/* Before the SSL is freed: send what the socket takes now, then stop
 * (no more events, no callback).  Bytes the socket refuses are lost. */
void	 tun_bio_finish(BIO *);

/*
 * A BIO for the read side of a tunnel's SSL over socket fd.  It reads
 * the socket in large pieces (TUN_RBIO_SIZE) and hands OpenSSL at most
 * one TLS record per read.  With read-ahead OpenSSL reads its own
 * buffer full and, before each record, moves what is left of it to the
 * front (to align the payload): 1.5 bytes moved per byte relayed, and a
 * read() per 32 KiB.  Records handed over one at a time leave nothing
 * to move, at the price of one copy; the larger reads halve the
 * syscalls and loop passes per byte.
 *
 * Records it holds are invisible to SSL_has_pending(): the owner asks
 * tun_rbio_pending() too before it waits for the socket.  The buffer is
 * freed whenever it is empty (an idle tunnel holds none).  The BIO does
 * not close fd; it answers BIO_get_fd() and BIO_eof().
 */
BIO	*tun_rbio_new(int fd);

/* Bytes read from the socket that OpenSSL has not taken yet. */
size_t	 tun_rbio_pending(BIO *);

#endif
