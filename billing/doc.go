// Package billing meters each app's usage (messages published, messages
// delivered, peak connections) for plans and invoices. The meter counts in
// memory with atomic adds, once per publish rather than once per recipient,
// and is read in batches, never written to a database per message.
package billing
