"""The plan's template check: every variant's templates compiled and a sample of the audience composed, before anything is written."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mailflow import TEMPLATES_DIR
from mailflow.errors import MailflowError
from mailflow.settings import Settings
from mailflow.tasks.compose.compose import Composer
from mailflow.tasks.compose.render import CampaignTemplates
from mailflow.tasks.compose.tokens import TokenSigner, signer_from_settings
from mailflow.tasks.deliver.smtp import Cause, Outcome
from mailflow.tasks.plan.campaign import CampaignSpec


def template_check(settings: Settings) -> Callable[[CampaignSpec, list[dict]], None]:
    """check(spec, rows) for plan(): composes through the send stage's own path. Without a tracking secret
    (it is needed only to send) a throwaway key signs the sample's links; DKIM is left to the send."""
    signer = signer_from_settings(settings.tracking) if settings.tracking.secret else TokenSigner(os.urandom(32).hex())
    directories = (settings.templates_dir, TEMPLATES_DIR)

    def check(spec: CampaignSpec, rows: list[dict]) -> None:
        check_templates(spec, rows, directories, signer, settings.tracking.base_url, settings.smtp.bounce_domain)
    return check


def check_templates(spec: CampaignSpec, rows: list[dict], directories: tuple[Path, ...], signer: TokenSigner,
                    base_url: str, bounce_domain: str) -> None:
    """Each variant's templates compile (a missing one or a syntax error names its file and line), and
    each sample recipient composes with them: a failing render names the variant, template and line."""
    for name in spec.variant_names:
        variant = spec.for_variant(name)
        where = f"campaign {spec.campaign_id!r}" + (f" variant {name!r}" if spec.variants else "")
        try:
            templates = CampaignTemplates(variant.template, variant.subject, {"name": spec.name, "id": spec.campaign_id},
                                          directories, track_opens=spec.tracking.get("opens", True),
                                          track_clicks=spec.tracking.get("clicks", True),
                                          preheader=variant.preheader, variant=name)
        except MailflowError as exc:
            raise MailflowError(f"{where}: {exc}") from None
        composer = Composer(variant, templates, signer, base_url, bounce_domain, None, variant=name)
        for row in rows:
            result = composer.compose(row)
            if isinstance(result, Outcome) and result.cause is not Cause.ADDRESS:
                raise MailflowError(f"{where}: template {variant.template!r} fails for subscriber "
                                    f"{row['subscriber_id']}: {result.detail}")
