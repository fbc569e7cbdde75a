package cluster

import "time"

const pollInterval = 500 * time.Millisecond
