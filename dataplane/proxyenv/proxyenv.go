// Package proxyenv holds the Go runtime settings meshlab's proxies run with. Every manifest that starts a
// proxy (the ztunnel DaemonSet, waypoint Deployments, injected sidecars) and the data-plane benchmark take
// them from here, so that what is measured is what is deployed.
package proxyenv

// GODEBUG keeps the Go runtime's monitor thread (sysmon) out of its deep sleep.
//
// When every P is idle, sysmon sleeps until the next system call wakes it, and then polls every 20 µs
// until the process is idle again. A proxy at a moderate request rate is idle between almost every pair
// of requests, so each request paid a futex wake-up of sysmon plus several 20 µs naps: about half of
// ztunnel's CPU at 1,000 requests/s (docs/benchmarks.md, "sysmon"). With schedtrace set, the runtime
// never lets sysmon sleep deeply; it backs off to one wake-up every 10 ms instead, about 100 a second
// whatever the load. The trace interval is the largest the runtime accepts (2^31-1 ms, 24.8 days), so the
// only visible effect is one "SCHED" line on stderr when the proxy starts.
const GODEBUG = "schedtrace=2147483647"
