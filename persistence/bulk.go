package persistence

// Concat moves every operation of o to the end of b, in order, and leaves o empty;
// it returns b. The sequence numbers of o's appends follow those of b's in the
// slice Apply returns. A broker builds the deletes and the appends of one commit in
// two batches and concatenates them, so that a driver sees each kind as one run it
// can write as one statement.
func (b *Batch) Concat(o *Batch) *Batch {
	if o == nil || o == b {
		return b
	}
	b.ops = append(b.ops, o.ops...)
	b.appends += o.appends
	o.ops, o.appends = nil, 0
	return b
}
