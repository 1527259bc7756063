// Package reconcile compares what aivis recorded with what the providers
// billed. Bills enter as the providers' own usage and cost exports (OpenAI's
// organization Costs and Usage API pages, Anthropic's Usage & Cost Admin API
// reports, AWS Cost and Usage Report / Data Exports CSV for Bedrock, Google
// Cloud Billing export rows for Vertex AI and Gemini); each importer turns
// rows into billed Lines per UTC day, provider and model, with model names
// mapped to the ones aivis events use. Compare sums the Lines and aivis's
// cost_by_window view per (day, provider, model) and names the likely cause
// of every difference. Money is decimal from the file to the page.
package reconcile
