package relay

import "github.com/wsalive/wsalive/proxy/metrics"

// side names one end of a pair. Per-side state lives in arrays indexed by
// it; a direction is named by its source: dir[s] carries the bytes from s
// toward s.other().
type side uint8

const (
	client side = iota
	upstream
)

func (s side) other() side { return 1 - s }

func (s side) String() string {
	if s == client {
		return "client"
	}
	return "upstream"
}

// metric returns s as a metrics label.
func (s side) metric() metrics.Side {
	if s == client {
		return metrics.Client
	}
	return metrics.Upstream
}

// towardMetric returns the direction toward s as a metrics label.
func (s side) towardMetric() metrics.Direction {
	if s == upstream {
		return metrics.ToUpstream
	}
	return metrics.ToClient
}

// toward returns the direction whose sink is side s: the one place where
// "toward s" is spelled as the direction from the other side.
func (p *pair) toward(s side) *direction { return &p.dir[s.other()] }
