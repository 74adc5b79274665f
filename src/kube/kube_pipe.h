/*
 * kube_pipe - the frames the Kubernetes client child (kube_client.h) writes
 * to the master's source (source_kube.h) over a pipe.  Pure: no I/O but the
 * writer's write(2) calls.
 *
 * A frame is a type byte, the payload's length (4 bytes, big-endian) and the
 * payload.  Types:
 *   KUBE_FRAME_PUT     key NUL json: the object named key has this record
 *   KUBE_FRAME_REMOVE  key: the object named key is gone
 *   KUBE_FRAME_BEGIN   a full list starts (store_sync_begin)
 *   KUBE_FRAME_END     the list is complete (store_sync_end): the API has
 *                      been listed, which /healthz waits for at start
 *   KUBE_FRAME_CANCEL  the list stopped part-way (store_sync_cancel)
 * A payload is at most the reader's max bytes: a longer one, an unknown type
 * or a PUT without its NUL is a protocol error (the master then kills the
 * child and starts another).
 */
#ifndef PERSONAD_KUBE_PIPE_H
#define PERSONAD_KUBE_PIPE_H

#include <stddef.h>
#include <stdint.h>

#define KUBE_FRAME_PUT 'P'
#define KUBE_FRAME_REMOVE 'R'
#define KUBE_FRAME_BEGIN 'B'
#define KUBE_FRAME_END 'E'
#define KUBE_FRAME_CANCEL 'C'

#define KUBE_PIPE_HEADER_BYTES 5
/* Room for a key (a Kubernetes name: at most 253 bytes) and its NUL beside
 * the largest record. */
#define KUBE_PIPE_KEY_ROOM 256

struct kube_frame {
    int type;
    const char *key;  /* PUT, REMOVE: NUL-terminated, inside the reader's buffer */
    const char *data; /* PUT: the record (NUL-terminated too); else NULL */
    size_t len;       /* of data */
};

/* The master's side: bytes in, frames out. */
struct kube_pipe_reader {
    unsigned char *buf; /* owned */
    size_t len, cap;    /* bytes held; allocated */
    size_t off;         /* start of the next frame */
    size_t max;         /* largest payload accepted */
};

void kube_pipe_reader_init(struct kube_pipe_reader *r, size_t max_payload);
void kube_pipe_reader_free(struct kube_pipe_reader *r);
/* kube_pipe_reader_reset - forget what is held (a new child). */
void kube_pipe_reader_reset(struct kube_pipe_reader *r);

/* kube_pipe_reader_space - where up to *room more bytes may be read into
 * (compacts and grows the buffer); NULL when out of memory. */
unsigned char *kube_pipe_reader_space(struct kube_pipe_reader *r, size_t *room);
/* kube_pipe_reader_commit - n bytes were read into the space. */
void kube_pipe_reader_commit(struct kube_pipe_reader *r, size_t n);

/* kube_pipe_next - the next whole frame held, valid until the next call to
 * any kube_pipe_reader_* function.  Returns 1 (a frame), 0 (need more
 * bytes), or -1 with *err set (a static string) on a bad frame. */
int kube_pipe_next(struct kube_pipe_reader *r, struct kube_frame *f, const char **err);

/* kube_pipe_pending - bytes held that are not yet a whole frame. */
size_t kube_pipe_pending(const struct kube_pipe_reader *r);

/* kube_pipe_encode - frame type/key/data into buf (size >= KUBE_PIPE_HEADER_BYTES
 * + key + 1 + len); key may be NULL (BEGIN, END, CANCEL), data NULL but for
 * PUT.  Returns the frame's length. */
size_t kube_pipe_encode(unsigned char *buf, int type, const char *key, const char *data,
                        size_t len);

/* kube_pipe_write - write one frame to fd, whole (a blocking pipe; EINTR is
 * retried).  Returns 0, or -1 with errno. */
int kube_pipe_write(int fd, int type, const char *key, const char *data, size_t len);

#endif
