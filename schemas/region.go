package schemas

import "strings"

// RegionOfEndpoint returns the provider region an endpoint host names,
// "" when it names none: AWS (bedrock-runtime.us-east-1.amazonaws.com),
// Google Cloud (europe-west4-aiplatform.googleapis.com) and Azure OpenAI
// hosts that carry a region (eastus2.api.cognitive.microsoft.com). A URL
// is reduced to its host first.
func RegionOfEndpoint(endpoint string) string {
	host := endpoint
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	if i := strings.IndexAny(host, "/:?#"); i >= 0 {
		host = host[:i]
	}
	host = strings.ToLower(host)
	parts := strings.Split(host, ".")
	switch {
	case strings.HasSuffix(host, ".amazonaws.com") && len(parts) >= 4:
		// service.region.amazonaws.com
		return parts[len(parts)-3]
	case strings.HasSuffix(host, "-aiplatform.googleapis.com") && len(parts) == 3:
		return strings.TrimSuffix(parts[0], "-aiplatform")
	case strings.HasSuffix(host, ".api.cognitive.microsoft.com") && len(parts) == 5:
		return parts[0]
	}
	return ""
}
