// Package deploytest tests the deployment artefacts in deploy/: the Helm
// chart rendered with Helm's own library and every object decoded strictly
// into the Kubernetes API types, the laptop docker-compose.yml loaded with
// the compose-spec loader, and the configuration each of them gives aivis
// validated by the aivis binary itself. It is a module of its own so that
// aivis does not depend on Helm and the Kubernetes API.
package deploytest
