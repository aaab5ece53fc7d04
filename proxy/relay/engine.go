package relay

import (
	"errors"
	"log/slog"
)

// Options configures an Engine.
type Options struct {
	// Loops is the number of event loops; 0 means runtime.GOMAXPROCS(0).
	Loops int
	// ReadBufferSize is the size of one read from a socket (per loop, not
	// per pair); 0 means 64 KiB. It also bounds what a pair can hold
	// buffered per direction while its sink is blocked.
	ReadBufferSize int
	// DisableIOUring makes every socket write its own system call instead
	// of batching a loop round's writes through io_uring. Batching is used
	// only where the kernel allows io_uring; this forces it off.
	DisableIOUring bool
	// OnClose, when set, is called once for every pair that ends, on the
	// loop that owned it. It must not block.
	OnClose func(PairStats)
	// Logger receives engine-level errors. nil means slog.Default().
	Logger *slog.Logger
}

// ErrClosed is returned by Attach after Close.
var ErrClosed = errors.New("relay: engine closed")

// Stats is a snapshot of engine-wide gauges.
type Stats struct {
	// Pairs is the number of live pairs.
	Pairs int64
	// BufferedBytes is the number of bytes held in pending write buffers
	// across all pairs (bytes read from one side not yet accepted by the
	// other's socket).
	BufferedBytes int64
	// Loops is the number of event loops; IOUringLoops how many of them
	// batch their reads and writes through io_uring.
	Loops, IOUringLoops int
}
