package relay

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is a minimal io_uring, used for one thing: to hand the kernel all
// the socket reads, and then all the writes, of a loop round in one
// io_uring_enter each, instead of one system call per socket. Readiness
// still comes from epoll; the loop stays epoll-style. Every request carries
// MSG_DONTWAIT, so the kernel performs it inline, during the submission,
// and never parks it: a send that would block, or a read that finds
// nothing, completes at once with -EAGAIN, exactly like the system call it
// replaces, and by the time io_uring_enter returns every completion is
// posted.
//
// Why: where a system call is expensive (virtual machines, kernels with
// speculative-execution mitigations), the entry and exit of each call cost
// as much as the TCP work it does. Measured on the 2-core paravirtualised
// machine the benchmarks run on, a 64 B loopback send cost 4.0 µs as a
// write(2) and 1.6 µs inside a batch of 200.
//
// Where io_uring is unavailable (old kernels, seccomp profiles such as
// Docker's default, kernel.io_uring_disabled) newRing fails and the loop
// makes one system call per read and write, as before.
type ring struct {
	fd      int
	entries uint32

	sqHead, sqTail *uint32
	sqMask         uint32
	sqArray        []uint32
	sqes           []uringSQE
	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []uringCQE

	queued  uint32 // SQEs filled since the last submit
	ringMem []byte
	sqeMem  []byte
}

// uringSQE is struct io_uring_sqe (64 bytes).
type uringSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	msgFlags    uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFdIn  int32
	addr3       uint64
	_           uint64
}

// uringCQE is struct io_uring_cqe (16 bytes).
type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// uringParams is struct io_uring_params (120 bytes).
type uringParams struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFd         uint32
	resv         [3]uint32
	sqOff        uringSQOffsets
	cqOff        uringCQOffsets
}

// uringSQOffsets and uringCQOffsets mirror the kernel's
// io_sqring_offsets and io_cqring_offsets; entries is its ring_entries.
type uringSQOffsets struct {
	head, tail, ringMask, entries, flags, dropped, array, resv1 uint32
	userAddr                                                    uint64
}

type uringCQOffsets struct {
	head, tail, ringMask, entries, overflow, cqes, flags, resv1 uint32
	userAddr                                                    uint64
}

const (
	uringOpSendmsg = 9
	uringOpSend    = 26
	uringOpRecv    = 27

	uringRegisterProbe    = 8
	uringOpSupported      = 1 << 0
	uringSetupSubmitAll   = 1 << 7
	uringSetupCoopTaskrun = 1 << 8
	uringFeatSingleMmap   = 1 << 0
	uringEnterGetEvents   = 1 << 0

	uringOffSQRing = 0
	uringOffSQEs   = 0x10000000

	// sendFlags: never block, never raise SIGPIPE (a reset peer is an
	// error result like any other).
	sendFlags = unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL
)

func init() {
	// The layouts are the kernel ABI; a wrong size would corrupt the rings.
	if unsafe.Sizeof(uringSQE{}) != 64 || unsafe.Sizeof(uringCQE{}) != 16 || unsafe.Sizeof(uringParams{}) != 120 {
		panic("relay: io_uring struct layout mismatch")
	}
}

// newRing sets up a ring with room for entries requests per submit.
func newRing(entries uint32) (*ring, error) {
	r, err := newRingFlags(entries, uringSetupSubmitAll|uringSetupCoopTaskrun)
	if errors.Is(err, unix.EINVAL) {
		// Kernels before 5.19 know neither flag; they are optimisations.
		r, err = newRingFlags(entries, 0)
	}
	return r, err
}

// newRingFlags sets up a ring with the given IORING_SETUP_* flags.
func newRingFlags(entries, flags uint32) (*ring, error) {
	p := uringParams{flags: flags}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &ring{fd: int(fd), entries: p.sqEntries}
	if p.features&uringFeatSingleMmap == 0 {
		r.close()
		return nil, errors.New("io_uring: kernel lacks IORING_FEAT_SINGLE_MMAP (before 5.4)")
	}
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(uringCQE{})))
	mem, err := unix.Mmap(r.fd, uringOffSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("io_uring: mapping the rings: %w", err)
	}
	r.ringMem = mem
	sqeMem, err := unix.Mmap(r.fd, uringOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(uringSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("io_uring: mapping the submission entries: %w", err)
	}
	r.sqeMem = sqeMem
	base := unsafe.Pointer(&mem[0])
	u32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Add(base, off)) }
	r.sqHead, r.sqTail, r.sqMask = u32(p.sqOff.head), u32(p.sqOff.tail), *u32(p.sqOff.ringMask)
	r.sqArray = unsafe.Slice(u32(p.sqOff.array), p.sqEntries)
	r.cqHead, r.cqTail, r.cqMask = u32(p.cqOff.head), u32(p.cqOff.tail), *u32(p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*uringCQE)(unsafe.Add(base, p.cqOff.cqes)), p.cqEntries)
	r.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&sqeMem[0])), p.sqEntries)
	if err := r.probe(uringOpSend, uringOpRecv, uringOpSendmsg); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// uringProbe is struct io_uring_probe with room for every opcode.
type uringProbe struct {
	lastOp, opsLen uint8
	_              uint16
	_              [3]uint32
	ops            [256]struct {
		op    uint8
		_     uint8
		flags uint16
		_     uint32
	}
}

// probe checks that the kernel performs the given operations. Kernels 5.4
// and 5.5 set up rings but know neither send nor recv: there, every batched
// request would fail, and the loop would take that for dead sockets. Those
// kernels cannot probe either (5.6 added both), so they fail here.
func (r *ring) probe(ops ...uint8) error {
	var pr uringProbe
	_, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), uringRegisterProbe,
		uintptr(unsafe.Pointer(&pr)), uintptr(len(pr.ops)), 0, 0)
	if errno != 0 {
		return fmt.Errorf("io_uring: probing the kernel's operations: %w", errno)
	}
	for _, op := range ops {
		if int(op) >= int(pr.opsLen) || pr.ops[op].flags&uringOpSupported == 0 {
			return fmt.Errorf("io_uring: the kernel lacks operation %d (send and recv need 5.6)", op)
		}
	}
	return nil
}

// full reports whether another request must wait for the next submit.
func (r *ring) full() bool { return r.queued == r.entries }

// send queues a send(2) of one buffer, tagged tag.
func (r *ring) send(fd int, b *byte, n int, tag uint64) {
	r.queue(uringSQE{opcode: uringOpSend, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(b))), len: uint32(n), msgFlags: sendFlags, userData: tag})
}

// recv queues a recv(2) into b[:n], tagged tag.
func (r *ring) recv(fd int, b *byte, n int, tag uint64) {
	r.queue(uringSQE{opcode: uringOpRecv, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(b))), len: uint32(n), msgFlags: unix.MSG_DONTWAIT, userData: tag})
}

// sendmsg queues a sendmsg(2) of msg, tagged tag. msg and its iovecs must
// stay put until submit returns.
func (r *ring) sendmsg(fd int, msg *unix.Msghdr, tag uint64) {
	r.queue(uringSQE{opcode: uringOpSendmsg, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(msg))), len: 1, msgFlags: sendFlags, userData: tag})
}

func (r *ring) queue(e uringSQE) {
	tail := atomic.LoadUint32(r.sqTail) + r.queued
	i := tail & r.sqMask
	r.sqes[i] = e
	r.sqArray[i] = i
	r.queued++
}

// submit hands the queued requests to the kernel and stores each one's
// result (bytes, or -errno) in res[tag]. On error, res[tag] is left as it
// was for every request that did not run.
func (r *ring) submit(res []int32) error {
	n := r.queued
	if n == 0 {
		return nil
	}
	r.queued = 0
	atomic.StoreUint32(r.sqTail, atomic.LoadUint32(r.sqTail)+n)
	var submitted uint32
	for {
		// The requests never block, so the raw system call is safe: the
		// scheduler needs no notice, as with the loop's read and write.
		ret, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), 0, 0, 0, 0)
		if errno == unix.EINTR || errno == unix.EAGAIN || errno == unix.EBUSY {
			continue
		}
		if errno != 0 {
			return fmt.Errorf("io_uring_enter: %w", errno)
		}
		submitted = uint32(ret)
		break
	}
	// Kernels without IORING_SETUP_SUBMIT_ALL stop at a request that fails
	// to start. The rest stay in the ring, and the caller drops it: results
	// are stored for the requests that ran, and the others keep the
	// caller's "not attempted" mark.
	queued := n
	n = submitted
	got := r.reap(res)
	for got < n {
		// Not expected with MSG_DONTWAIT, but if the kernel ever finished a
		// request asynchronously, wait for it: the loop relies on knowing
		// every result before it goes on. This call may block, so it goes
		// through the scheduler.
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 0, uintptr(n-got), uringEnterGetEvents, 0, 0)
		if errno != 0 && errno != unix.EINTR {
			return fmt.Errorf("io_uring_enter (waiting): %w", errno)
		}
		got += r.reap(res)
	}
	if submitted < queued {
		return fmt.Errorf("io_uring_enter took %d of %d requests", submitted, queued)
	}
	return nil
}

// reap consumes the posted completions.
func (r *ring) reap(res []int32) uint32 {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	n := tail - head
	for ; head != tail; head++ {
		c := &r.cqes[head&r.cqMask]
		res[c.userData] = c.res
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

func (r *ring) close() {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
		r.sqeMem = nil
	}
	if r.ringMem != nil {
		unix.Munmap(r.ringMem)
		r.ringMem = nil
	}
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}
