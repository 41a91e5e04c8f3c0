package demo

import "embed"

// examples is a copy of the repository's examples/ folder (followup.yaml,
// contacts.csv, templates/), so that `followupd demo` works from a binary
// installed with `go install`. TestEmbeddedExamplesMatch keeps it equal
// to examples/; refresh it with `go generate ./demo/`.
//
//go:generate sh -c "rm -rf examples && mkdir -p examples/templates && cp ../examples/followup.yaml ../examples/contacts.csv examples/ && cp ../examples/templates/* examples/templates/"
//go:embed examples/followup.yaml examples/contacts.csv examples/templates
var examples embed.FS
