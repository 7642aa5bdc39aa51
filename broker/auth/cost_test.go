package auth

import "golang.org/x/crypto/bcrypt"

// The tests hash at the lowest cost: the cost changes nothing they check, and
// the default one takes seconds under the race detector.
func init() { hashCost = bcrypt.MinCost }
