/*
 * kube_pipe - see kube_pipe.h.
 */
#include "build_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kube/kube_pipe.h"

#define KUBE_PIPE_READ_CHUNK 65536

void
kube_pipe_reader_init(struct kube_pipe_reader *r, size_t max_payload)
{
    memset(r, 0, sizeof(*r));
    r->max = max_payload;
}

void
kube_pipe_reader_free(struct kube_pipe_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = r->off = 0;
}

void
kube_pipe_reader_reset(struct kube_pipe_reader *r)
{
    r->len = r->off = 0;
}

size_t
kube_pipe_pending(const struct kube_pipe_reader *r)
{
    return r->len - r->off;
}

unsigned char *
kube_pipe_reader_space(struct kube_pipe_reader *r, size_t *room)
{
    if (r->off > 0) {
        memmove(r->buf, r->buf + r->off, r->len - r->off);
        r->len -= r->off;
        r->off = 0;
    }
    if (r->cap - r->len < KUBE_PIPE_READ_CHUNK) {
        size_t cap = r->len + KUBE_PIPE_READ_CHUNK;
        unsigned char *b = realloc(r->buf, cap);
        if (b == NULL)
            return NULL;
        r->buf = b;
        r->cap = cap;
    }
    *room = r->cap - r->len;
    return r->buf + r->len;
}

void
kube_pipe_reader_commit(struct kube_pipe_reader *r, size_t n)
{
    r->len += n;
}

int
kube_pipe_next(struct kube_pipe_reader *r, struct kube_frame *f, const char **err)
{
    size_t have = r->len - r->off;
    if (have < KUBE_PIPE_HEADER_BYTES)
        return 0;
    unsigned char *h = r->buf + r->off;
    size_t n = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | (size_t)h[4];
    int type = h[0];
    if (n > r->max) {
        *err = "frame longer than the largest object";
        return -1;
    }
    switch (type) {
    case KUBE_FRAME_PUT:
    case KUBE_FRAME_REMOVE:
        if (n == 0) {
            *err = "frame without a key";
            return -1;
        }
        break;
    case KUBE_FRAME_BEGIN:
    case KUBE_FRAME_END:
    case KUBE_FRAME_CANCEL:
        if (n != 0) {
            *err = "frame with an unexpected payload";
            return -1;
        }
        break;
    default:
        *err = "unknown frame type";
        return -1;
    }
    if (have - KUBE_PIPE_HEADER_BYTES < n)
        return 0;
    char *p = (char *)h + KUBE_PIPE_HEADER_BYTES;
    memset(f, 0, sizeof(*f));
    f->type = type;
    if (type == KUBE_FRAME_PUT) {
        char *nul = memchr(p, '\0', n);
        if (nul == NULL || nul == p) {
            *err = "put frame without a key";
            return -1;
        }
        f->key = p;
        f->data = nul + 1;
        f->len = n - (size_t)(nul + 1 - p);
    } else if (type == KUBE_FRAME_REMOVE) {
        if (memchr(p, '\0', n) != NULL) {
            *err = "remove frame with a NUL in its key";
            return -1;
        }
        f->key = p;
    }
    /* The header's five bytes of the frame are spent: shift the payload one
     * byte down into them to make room for its terminating NUL. */
    memmove(h, p, n);
    h[n] = '\0';
    ptrdiff_t shift = p - (char *)h;
    if (f->key != NULL)
        f->key -= shift;
    if (f->data != NULL)
        f->data -= shift;
    r->off += KUBE_PIPE_HEADER_BYTES + n;
    return 1;
}

size_t
kube_pipe_encode(unsigned char *buf, int type, const char *key, const char *data, size_t len)
{
    size_t klen = key != NULL ? strlen(key) : 0;
    size_t n = klen + (type == KUBE_FRAME_PUT ? 1 + len : 0);
    buf[0] = (unsigned char)type;
    buf[1] = (unsigned char)(n >> 24);
    buf[2] = (unsigned char)(n >> 16);
    buf[3] = (unsigned char)(n >> 8);
    buf[4] = (unsigned char)n;
    if (klen > 0)
        memcpy(buf + KUBE_PIPE_HEADER_BYTES, key, klen);
    if (type == KUBE_FRAME_PUT) {
        buf[KUBE_PIPE_HEADER_BYTES + klen] = '\0';
        if (len > 0)
            memcpy(buf + KUBE_PIPE_HEADER_BYTES + klen + 1, data, len);
    }
    return KUBE_PIPE_HEADER_BYTES + n;
}

int
kube_pipe_write(int fd, int type, const char *key, const char *data, size_t len)
{
    size_t klen = key != NULL ? strlen(key) : 0;
    unsigned char *buf = malloc(KUBE_PIPE_HEADER_BYTES + klen + 1 + len);
    if (buf == NULL)
        return -1;
    size_t n = kube_pipe_encode(buf, type, key, data, len), done = 0;
    while (done < n) {
        ssize_t w = write(fd, buf + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            free(buf);
            errno = e;
            return -1;
        }
        done += (size_t)w;
    }
    free(buf);
    return 0;
}
