package driver_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/mqttstore/mqttstore/persistence/driver"
)

// ---- fuzzing ----

// fuzzDecoder checks one fuzz input against one decoder, twice: as given (almost
// always stopped by the checksum) and with a valid checksum appended, so that the
// fuzzer can explore the body behind it. Errors must match ErrBrokenEntry and come
// with the zero value; a success must survive encode→decode unchanged, and
// re-encoding must be a fixed point (encoders are canonical).
func fuzzDecoder[T any](t *testing.T, in []byte, encode func([]byte, T) []byte, decode func([]byte) (T, error), same func(a, b T) bool) {
	for _, b := range [][]byte{in, withCRC(in)} {
		orig := bytes.Clone(b)
		v, err := decode(b)
		if !bytes.Equal(b, orig) {
			t.Fatalf("decoder modified its input")
		}
		if err != nil {
			if !errors.Is(err, driver.ErrBrokenEntry) {
				t.Fatalf("error %q does not match ErrBrokenEntry", err)
			}
			if !reflect.ValueOf(&v).Elem().IsZero() {
				t.Fatalf("decoder returned %+v with its error", v)
			}
			continue
		}
		re := encode(nil, v)
		v2, err := decode(re)
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", v, err)
		}
		if !same(v, v2) {
			t.Fatalf("round trip changed the value:\nfirst  %+v\nsecond %+v", v, v2)
		}
		if again := encode(nil, v2); !bytes.Equal(again, re) {
			t.Fatalf("encoding is not canonical:\n%x\n%x", re, again)
		}
	}
}

// addSeeds seeds a fuzz target with valid blobs, the same blobs without their
// checksum (which fuzzDecoder's withCRC path turns back into valid blobs) and a few
// degenerate inputs.
func addSeeds(f *testing.F, samples [][]byte) {
	for _, b := range samples {
		f.Add(b)
		f.Add(b[:len(b)-4])
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0})
}

func codecSamples(name string) [][]byte {
	for _, c := range allCodecs() {
		if c.name == name {
			return c.samples
		}
	}
	panic("no codec " + name)
}

func FuzzDecodePacket(f *testing.F) {
	addSeeds(f, codecSamples("Packet"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzDecoder(t, b, driver.EncodePacket, driver.DecodePacket, samePacket)
	})
}

func FuzzDecodeSubscription(f *testing.F) {
	addSeeds(f, codecSamples("Subscription"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzDecoder(t, b, driver.EncodeSubscription, driver.DecodeSubscription, sameSubscription)
	})
}

func FuzzDecodeState(f *testing.F) {
	addSeeds(f, codecSamples("State"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzDecoder(t, b, driver.EncodeState, driver.DecodeState, sameState)
	})
}

func FuzzDecodeExpiry(f *testing.F) {
	addSeeds(f, codecSamples("Expiry"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzDecoder(t, b, driver.EncodeExpiry, driver.DecodeExpiry, sameExpiry)
	})
}

func FuzzDecodeSessionBase(f *testing.F) {
	addSeeds(f, codecSamples("SessionBase"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzDecoder(t, b, driver.EncodeSessionBase, driver.DecodeSessionBase, sameBase)
	})
}

func FuzzDecodeSystemInfo(f *testing.F) {
	addSeeds(f, codecSamples("SystemInfo"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzDecoder(t, b, driver.EncodeSystemInfo, driver.DecodeSystemInfo, sameSystem)
	})
}
