package packet

import "bufio"

var errNotImplemented = &Error{Code: ImplementationSpecific, Msg: "not implemented"}

func readPacket(r *bufio.Reader, version byte, maxSize uint32) (Packet, error) {
	return nil, errNotImplemented
}

func encode(dst []byte, p Packet, version byte) ([]byte, error) {
	return dst, errNotImplemented
}

// Clone returns a deep copy of p that shares no memory with it, so a
// decoded message can outlive the buffer it was read into or be modified
// (for example its Dup flag or properties) per subscriber.
func (p *Publish) Clone() *Publish {
	return nil
}
