package webhook

import (
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
)

// Setup registers kubemdm's webhooks with the manager's webhook server.
func Setup(mgr ctrl.Manager) error {
	if err := ctrl.NewWebhookManagedBy(mgr, &mdmv1alpha1.DeviceAction{}).
		WithValidator(&DeviceActionValidator{Client: mgr.GetClient()}).
		Complete(); err != nil {
		return err
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &mdmv1alpha1.Device{}).
		WithValidator(&DeviceValidator{Client: mgr.GetClient()}).
		Complete(); err != nil {
		return err
	}
	mgr.GetWebhookServer().Register(UnenrollmentStamperPath, &webhook.Admission{
		Handler: &UnenrollmentStamper{Decoder: admission.NewDecoder(mgr.GetScheme())},
	})
	return nil
}
