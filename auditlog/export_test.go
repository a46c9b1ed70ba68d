package auditlog

// Enqueue hands e to the ingester's batch loop as Handle does, and returns
// once the loop holds it in the batch it is collecting (or has written
// it, when that filled the batch), with the channel that receives its
// outcome. Tests use it to know, without waiting for time to pass, what a
// batch holds when they call Close.
func (in *Ingester) Enqueue(e Entry) <-chan error {
	req := ingestReq{entry: e, res: make(chan error, 1)}
	in.reqs <- req
	return req.res
}

// Redact is the Edit an erasure of values (value: replacement) applies.
func (x *Eraser) Redact(values map[string]string) Edit { return x.redact(values, nil) }

// Queued is how many deletions wait in EraseUser for the erasure running.
func (x *Eraser) Queued() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.pending)
}
