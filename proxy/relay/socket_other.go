//go:build !linux

package relay

import (
	"context"
	"net"
)

// Sockets are Linux's (socket_linux.go): elsewhere every connection is
// net's own.

// NearConn returns ctx: there are no event loops here.
func NearConn(ctx context.Context, _ net.Conn) context.Context { return ctx }

// NetConn returns c: there are no Sockets here.
func NetConn(c net.Conn) (net.Conn, error) { return c, nil }

func isSocket(net.Conn) bool { return false }
