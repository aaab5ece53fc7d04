package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// A route may declare the idle limit of the network path in front of
// wsalive: the NAT or load balancer that silently forgets a connection
// through which nothing passed for that long. The client heartbeat is then
// checked against it at load time (see checkNATLimit in liveness.go). The
// limit is given either as a duration (nat_idle_timeout) or by naming one
// of the well-known defaults below (nat_profile).

// NATLimit is the default idle limit of a well-known load balancer, NAT or
// proxy, as nat_profile names it.
type NATLimit struct {
	// Name is the value of nat_profile that selects this limit.
	Name string
	// Limit is how long a connection may carry nothing before the device
	// drops it (or its address mapping), silently for the endpoints.
	Limit time.Duration
	// Device names what enforces the limit, for messages.
	Device string
	// Source names the vendor documentation that states the limit.
	Source string
}

// natProfiles are the known profiles, sorted by name. The limits are the
// vendors' defaults; most can be changed, and a path whose limit was
// changed should be declared with nat_idle_timeout instead.
var natProfiles = []NATLimit{
	{
		Name:   "aws-alb",
		Limit:  60 * time.Second,
		Device: "AWS Application Load Balancer",
		Source: "AWS Elastic Load Balancing, Application Load Balancers: connection idle timeout, default 60 seconds",
	},
	{
		Name:   "aws-nat-gateway",
		Limit:  350 * time.Second,
		Device: "AWS NAT gateway",
		Source: "Amazon VPC, NAT gateways: a connection idle for 350 seconds or more times out",
	},
	{
		Name:   "aws-nlb",
		Limit:  350 * time.Second,
		Device: "AWS Network Load Balancer",
		Source: "AWS Elastic Load Balancing, Network Load Balancers: TCP idle timeout, default 350 seconds",
	},
	{
		Name:   "azure-lb",
		Limit:  4 * time.Minute,
		Device: "Azure Load Balancer",
		Source: "Azure Load Balancer, TCP reset and idle timeout: default 4 minutes",
	},
	{
		Name:   "azure-nat-gateway",
		Limit:  4 * time.Minute,
		Device: "Azure NAT Gateway",
		Source: "Azure NAT Gateway, idle timeout timers: TCP idle timeout, default 4 minutes",
	},
	{
		Name:   "cloudflare",
		Limit:  100 * time.Second,
		Device: "Cloudflare proxy",
		Source: "Cloudflare connection limits: Proxy Read Timeout (Cloudflare to origin), 100 seconds",
	},
	{
		Name:   "gcp-cloud-nat",
		Limit:  1200 * time.Second,
		Device: "Google Cloud NAT",
		Source: "Google Cloud NAT, NAT timeouts: TCP established connection idle timeout, default 1200 seconds",
	},
	{
		Name:   "nginx",
		Limit:  60 * time.Second,
		Device: "nginx proxy",
		Source: "nginx ngx_http_proxy_module: proxy_read_timeout, default 60s",
	},
}

// NATProfiles returns every profile that nat_profile accepts, sorted by
// name. The slice is a copy; changing it changes nothing else.
func NATProfiles() []NATLimit {
	return slices.Clone(natProfiles)
}

// lookupNATProfile returns the profile called name. Names are matched
// exactly: they are identifiers, like every other name in the file.
func lookupNATProfile(name string) (NATLimit, bool) {
	i := slices.IndexFunc(natProfiles, func(p NATLimit) bool { return p.Name == name })
	if i < 0 {
		return NATLimit{}, false
	}
	return natProfiles[i], true
}

// natProfileNames lists the known names, quoted, for a message.
func natProfileNames() string {
	names := make([]string, len(natProfiles))
	for i, p := range natProfiles {
		names[i] = fmt.Sprintf("%q", p.Name)
	}
	return strings.Join(names, ", ")
}

// unknownNATProfile is the message for a nat_profile that names no profile.
func unknownNATProfile(name string) string {
	names := make([]string, len(natProfiles))
	for i, p := range natProfiles {
		names[i] = p.Name
	}
	msg := fmt.Sprintf("unknown profile %q: want one of %s", name, natProfileNames())
	if s := suggest(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return msg
}

// limitText writes a NAT limit for a message in whole seconds ("350s"),
// the unit vendors state them in, rather than as "5m50s".
func limitText(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}
