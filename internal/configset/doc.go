// Package configset decides what configurations a device gets: which
// Configurations target it (by selector or by name), which of their
// settings it takes where several set the same one, and the content hash
// (revision) of each. The gateway renders a device's effective set with it
// and the Configuration controller its revision, so both agree.
package configset
