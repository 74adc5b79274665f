/*
 * ws_frame - server-to-client WebSocket frames (RFC 6455, unmasked) and the
 * frame tracker of the client's input stream.
 *
 * ws_frame_text is the WebSocket encoder of the worker's event window
 * (event_window.c): each event is framed once per worker, and the same bytes
 * go to every WebSocket connection.
 */
#ifndef PERSONAD_WS_FRAME_H
#define PERSONAD_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define WS_OP_TEXT 0x1
#define WS_OP_CLOSE 0x8
#define WS_OP_PING 0x9
#define WS_OP_PONG 0xa
#define WS_CONTROL_PAYLOAD_MAX 125

/* ws_frame_header - write the header of a final, unmasked frame into out
 * (at most 10 bytes); returns its length. */
size_t ws_frame_header(uint8_t *out, uint8_t opcode, uint64_t payload_len);

/* ws_frame_text_size - bytes of a text frame carrying payload_len bytes. */
size_t ws_frame_text_size(uint32_t payload_len);

/* ws_frame_text - a whole text frame (header + payload) into out, which has
 * ws_frame_text_size(len) bytes; returns that length. */
size_t ws_frame_text(uint8_t *out, const void *payload, uint32_t len);

/* ws_frame_control - a whole control frame (payload <= 125 bytes) into out
 * (at most 127 bytes); returns its length, or 0 if the payload is too long. */
size_t ws_frame_control(uint8_t *out, uint8_t opcode, const void *payload, size_t len);

/* ws_frame_close - a close frame with code and reason (truncated to fit). */
size_t ws_frame_close(uint8_t *out, uint16_t code, const char *reason);

/* ws_close_code_valid - 1 if a peer may send code in a close frame: 1000-1003,
 * 1007-1014 (RFC 6455 7.4.1 and the IANA registry: 1012 service restart, 1013
 * try again later, 1014 bad gateway) and 3000-4999.  1004 is reserved; 1005,
 * 1006 and 1015 never appear on the wire; 1016-2999 are unassigned. */
int ws_close_code_valid(uint16_t code);

/* Where a connection's incoming byte stream stands, frame-wise.  wslay does the
 * real parsing; this only follows frame headers and lengths so the connection
 * knows when wslay holds no state worth keeping (no partial frame, no
 * unfinished fragmented message) and its ~8 KB context can be freed. */
struct ws_rx_track {
    uint64_t payload_left; /* payload bytes of the current frame still to come */
    uint8_t hdr[14];       /* header bytes of the next frame seen so far */
    uint8_t hdr_len;
    uint8_t fragmented;    /* inside a data message whose final frame has not come */
    uint8_t saw_close;     /* a close frame's header has been seen */
};

/* ws_rx_track_feed - account for len more bytes of the stream. */
void ws_rx_track_feed(struct ws_rx_track *t, const uint8_t *buf, size_t len);

/* ws_rx_track_idle - 1 at a frame boundary outside any fragmented message. */
int ws_rx_track_idle(const struct ws_rx_track *t);

#endif
