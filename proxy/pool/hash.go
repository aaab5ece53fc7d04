package pool

// hashString is 64-bit FNV-1a: fast, allocation-free, and well spread
// once its output goes through mix.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// score is a server's rendezvous weight for a key: the two hashes combined
// and mixed, so that each server's ranking of the keys is independent of
// the others'.
func score(key, server uint64) uint64 {
	return mix(key ^ mix(server))
}

// mix is the SplitMix64 finalizer: every input bit affects every output
// bit, which FNV alone does not give for inputs that differ in the last
// byte.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
