package bookinfo

// Service (and app label) names.
const (
	ProductPage = "productpage"
	Details     = "details"
	Reviews     = "reviews"
	Ratings     = "ratings"
	Sleep       = "sleep"
)

const (
	// SleepPort is the sleep Service's port; nothing listens on it, as upstream.
	SleepPort = 80
	// HealthPath is what the readiness probes GET on Port.
	HealthPath = "/health"
)

// Apps are the bookinfo services, in the order they are deployed.
var Apps = []string{ProductPage, Details, Reviews, Ratings}

// ReviewsVersions are the deployed versions of reviews.
var ReviewsVersions = []string{"v1", "v2", "v3"}

// ServiceNames returns the names of the Services the sample has: the bookinfo services and sleep.
func ServiceNames() []string { return append(append([]string(nil), Apps...), Sleep) }

// DeploymentNames returns the names of the sample's Deployments, in the order they are applied.
func DeploymentNames() []string {
	names := []string{DeploymentName(ProductPage, "v1"), DeploymentName(Details, "v1"), DeploymentName(Ratings, "v1")}
	for _, v := range ReviewsVersions {
		names = append(names, DeploymentName(Reviews, v))
	}
	return append(names, Sleep)
}

// DeploymentName is the name of app's Deployment at version: <app>-<version>.
func DeploymentName(app, version string) string { return app + "-" + version }

// ServiceAccountName is the service account app's pods run as: bookinfo-<app>, or sleep for sleep.
func ServiceAccountName(app string) string {
	if app == Sleep {
		return Sleep
	}
	return "bookinfo-" + app
}
