// Package relay is wsalive's relay engine: a few epoll event loops that
// each own a set of client/upstream pairs and move WebSocket frames between
// them without unmasking, copying into messages, or re-framing.
//
// A pair is two one-way directions (client→upstream and upstream→client).
// Each direction has a streaming frame-header parser that only learns where
// frame boundaries are, so control frames can be injected between frames
// and protocol violations can be caught before a bad frame is forwarded.
package relay
