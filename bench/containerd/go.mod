// containerd's reaper as a baseline of `npm run bench` (see main.go). Two major versions, side
// by side: v1 (sys/reaper) and v2 (pkg/sys/reaper).
module subreaper.bench/containerd

go 1.26.6

require (
	github.com/containerd/containerd v1.4.13
	github.com/containerd/containerd/v2 v2.4.2
)

require (
	github.com/containerd/console v1.0.5 // indirect
	github.com/containerd/go-runc v1.2.1 // indirect
	github.com/opencontainers/runtime-spec v1.3.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
