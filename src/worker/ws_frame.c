/*
 * ws_frame - see ws_frame.h.
 */
#include "build_config.h"

#include <string.h>

#include "worker/ws_frame.h"

size_t
ws_frame_header(uint8_t *out, uint8_t opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

size_t
ws_frame_text_size(uint32_t payload_len)
{
    return (payload_len < 126 ? 2 : payload_len <= 0xffff ? 4 : 10) + (size_t)payload_len;
}

size_t
ws_frame_text(uint8_t *out, const void *payload, uint32_t len)
{
    size_t h = ws_frame_header(out, WS_OP_TEXT, len);
    memcpy(out + h, payload, len);
    return h + len;
}

size_t
ws_frame_control(uint8_t *out, uint8_t opcode, const void *payload, size_t len)
{
    if (len > WS_CONTROL_PAYLOAD_MAX)
        return 0;
    size_t h = ws_frame_header(out, opcode, len);
    if (len > 0)
        memcpy(out + h, payload, len);
    return h + len;
}

size_t
ws_frame_close(uint8_t *out, uint16_t code, const char *reason)
{
    uint8_t payload[WS_CONTROL_PAYLOAD_MAX];
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > WS_CONTROL_PAYLOAD_MAX - 2)
        rlen = WS_CONTROL_PAYLOAD_MAX - 2; /* reasons are our own ASCII strings */
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    if (rlen > 0)
        memcpy(payload + 2, reason, rlen);
    return ws_frame_control(out, WS_OP_CLOSE, payload, rlen + 2);
}

int
ws_close_code_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* Header length once the first two bytes are known. */
static size_t
rx_header_len(const uint8_t *hdr)
{
    size_t n = 2 + ((hdr[1] & 0x80) ? 4 : 0);
    uint8_t len7 = hdr[1] & 0x7f;
    return n + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
}

static void
rx_header_done(struct ws_rx_track *t)
{
    uint8_t len7 = t->hdr[1] & 0x7f, opcode = t->hdr[0] & 0x0f;
    int fin = (t->hdr[0] & 0x80) != 0;
    uint64_t len = len7;
    if (len7 == 126)
        len = (uint64_t)t->hdr[2] << 8 | t->hdr[3];
    else if (len7 == 127)
        for (int i = 0; i < 8; i++)
            len = len << 8 | t->hdr[2 + i];
    t->payload_left = len;
    t->hdr_len = 0;
    if (opcode < 0x8) /* data or continuation frame; control frames never fragment */
        t->fragmented = !fin;
    else if (opcode == 0x8)
        t->saw_close = 1;
}

void
ws_rx_track_feed(struct ws_rx_track *t, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        if (t->payload_left > 0) {
            size_t skip = len < t->payload_left ? len : (size_t)t->payload_left;
            t->payload_left -= skip;
            buf += skip;
            len -= skip;
            continue;
        }
        t->hdr[t->hdr_len++] = *buf++;
        len--;
        if (t->hdr_len >= 2 && t->hdr_len == rx_header_len(t->hdr))
            rx_header_done(t);
    }
}

int
ws_rx_track_idle(const struct ws_rx_track *t)
{
    return t->hdr_len == 0 && t->payload_left == 0 && !t->fragmented;
}
