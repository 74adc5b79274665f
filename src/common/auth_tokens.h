/*
 * auth_tokens - the bearer tokens of --auth-token-file: read, bounded, kept
 * as SHA-256 digests, matched in constant time.
 *
 * The file holds one token per line; blank lines and lines whose first
 * non-blank character is '#' are ignored, and the blanks around a token are
 * trimmed.  A token is 1..AUTH_TOKEN_MAX_LEN characters of RFC 6750's
 * b64token (letters, digits, "-._~+/", then any '='), so that every token can
 * be sent in an Authorization header.  At most AUTH_TOKENS_MAX tokens and
 * AUTH_TOKENS_FILE_MAX bytes; a file with no token is an error.
 *
 * Only digests are kept: auth_tokens_match hashes the candidate and compares
 * it with every digest (nettle's memeql_sec, no early exit), so neither the
 * time taken nor its outcome's timing depends on where a guess first differs
 * or on the tokens' lengths.  Used by the master (to check the file at start
 * and on SIGHUP) and by each worker (which answers requests with it).
 * Error messages name the file and line, never a token.
 */
#ifndef PERSONAD_AUTH_TOKENS_H
#define PERSONAD_AUTH_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_TOKENS_MAX 256
#define AUTH_TOKEN_MAX_LEN 512
#define AUTH_TOKENS_FILE_MAX (64 * 1024)
#define AUTH_TOKEN_DIGEST_LEN 32 /* SHA-256 */

struct auth_tokens {
    size_t n;                                 /* 0: none loaded (everything refused) */
    uint8_t (*digest)[AUTH_TOKEN_DIGEST_LEN]; /* n digests, malloc'd; NULL when n is 0 */
};

/* auth_tokens_parse - the tokens of the len bytes at buf (a file's contents;
 * where names it in messages) into *t, which must be empty (zeroed or freed).
 * Returns 0, or -1 with the reason in msg (*t stays empty). */
int auth_tokens_parse(struct auth_tokens *t, const char *buf, size_t len, const char *where,
                      char *msg, size_t msg_size);

/* auth_tokens_load - auth_tokens_parse of the file at path (at most
 * AUTH_TOKENS_FILE_MAX bytes; a missing or unreadable file is an error). */
int auth_tokens_load(struct auth_tokens *t, const char *path, char *msg, size_t msg_size);

/* auth_tokens_replace - replace *t by *next (whose contents move: *next is left
 * empty) and free what *t held. */
void auth_tokens_replace(struct auth_tokens *t, struct auth_tokens *next);

/* auth_tokens_free - release *t and leave it empty. */
void auth_tokens_free(struct auth_tokens *t);

/* auth_tokens_match - 1 if the len bytes at token are one of t's tokens, else 0
 * (always 0 for an empty set).  Constant time in the candidate's contents. */
int auth_tokens_match(const struct auth_tokens *t, const char *token, size_t len);

#endif
