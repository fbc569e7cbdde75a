package xds

import "sync"

// pushQueue holds at most one pending push per connection. A request for a connection that is already
// waiting merges into its pending request; one for a connection being pushed right now is kept aside and
// queued again when that push is done, so a busy proxy gets one more push with everything that arrived
// meanwhile, not one per change.
type pushQueue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	order      []*connection
	pending    map[*connection]*PushRequest
	processing map[*connection]*PushRequest // nil value: in flight, nothing arrived since
	closed     bool
}

func newPushQueue() *pushQueue {
	q := &pushQueue{pending: map[*connection]*PushRequest{}, processing: map[*connection]*PushRequest{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Enqueue schedules a push of req to c, merging with what is already scheduled.
func (q *pushQueue) Enqueue(c *connection, req *PushRequest) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if r, ok := q.processing[c]; ok {
		q.processing[c] = r.Merge(req)
		return
	}
	if r, ok := q.pending[c]; ok {
		q.pending[c] = r.Merge(req)
		return
	}
	q.pending[c] = req
	q.order = append(q.order, c)
	q.cond.Signal()
}

// Dequeue blocks until a push is pending and returns it, marking the connection in flight. ok is false
// once the queue is closed.
func (q *pushQueue) Dequeue() (c *connection, req *PushRequest, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for len(q.order) == 0 && !q.closed {
			q.cond.Wait()
		}
		if q.closed {
			return nil, nil, false
		}
		c, q.order = q.order[0], q.order[1:]
		if req, ok = q.pending[c]; ok { // absent when the connection was removed
			delete(q.pending, c)
			q.processing[c] = nil
			return c, req, true
		}
	}
}

// MarkDone ends c's in-flight push; what arrived meanwhile is queued as c's next push.
func (q *pushQueue) MarkDone(c *connection) {
	q.mu.Lock()
	defer q.mu.Unlock()
	req, ok := q.processing[c]
	delete(q.processing, c)
	if ok && req != nil && !q.closed {
		q.pending[c] = req
		q.order = append(q.order, c)
		q.cond.Signal()
	}
}

// Remove forgets c (it disconnected).
func (q *pushQueue) Remove(c *connection) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.pending, c)
	delete(q.processing, c)
}

// Pending returns how many connections wait for a push.
func (q *pushQueue) Pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// Close wakes Dequeue for good.
func (q *pushQueue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}
