package wsload

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestParseStatCPU(t *testing.T) {
	cases := []struct {
		name string
		stat string
		want uint64
	}{
		{
			name: "plain command",
			stat: "1234 (wsalive) S 1 1234 1234 0 -1 4194560 500 0 0 0 150 25 0 0 20 0 8 0 100 1000000 2000 18446744073709551615",
			want: 175,
		},
		{
			name: "command with spaces and parentheses",
			stat: "77 (a (b) c) R 1 77 77 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 1 1 0",
			want: 10,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tc.stat))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf(
					"got %d ticks, want %d",
					got, tc.want,
				)
			}
		})
	}
	if _, err := parseStatCPU([]byte("1 (x) S 1 2")); err == nil {
		t.Fatal("short stat line parsed without error")
	}
}

func TestParseStatus(t *testing.T) {
	status := strings.Join([]string{
		"Name:\twsalive",
		"VmHWM:\t   20480 kB",
		"VmRSS:\t   10240 kB",
		"Threads:\t7",
	}, "\n")
	var st ProcStats
	if err := parseStatus([]byte(status), &st); err != nil {
		t.Fatal(err)
	}
	if st.RSSBytes != 10240*1024 || st.HWMBytes != 20480*1024 || st.Threads != 7 {
		t.Fatalf(
			"parsed %+v",
			st,
		)
	}
	if err := parseStatus([]byte("Name:\tkthreadd\nThreads:\t1\n"), &st); err == nil {
		t.Fatal("status without VmRSS parsed without error")
	}
}

func TestReadProcStatsSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux only")
	}
	st, err := ReadProcStats(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.RSSBytes <= 0 || st.HWMBytes < st.RSSBytes || st.Threads < 1 || st.FDs < 3 {
		t.Fatalf(
			"implausible stats of the test process: %+v",
			st,
		)
	}
}
