"""The vendor error catalogue: every error the sandbox answers, with its HTTP status and text.

Keys read ``<operationId>.<status>.<name>``; the operationIds are the legacy OpenAPI
file's. Entries marked *sandbox* in their comment are not in the vendor's files: they
cover inputs the vendor documents no answer for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}


def reason_phrase(http_status: int) -> str:
    """The status's phrase: the vendor's wording of its own statuses, HTTP's for any other, "" for a
    status HTTP names none for (a scenario may answer 299)."""
    if http_status in REASONS:
        return REASONS[http_status]
    try:
        return HTTPStatus(http_status).phrase
    except ValueError:
        return ""


def status_line(http_status: int) -> str:
    """The legacy envelope's status string, e.g. ``"412 Precondition Failed"`` (``"299"`` without a phrase)."""
    return f"{http_status} {reason_phrase(http_status)}".rstrip()


@dataclass(frozen=True)
class ErrorSpec:
    """One catalogue entry. ``details`` is a ``str.format`` template, or a JSON-shaped
    value whose strings are templates; ``status_text`` overrides the envelope status
    string where the vendor documents an unusual one."""

    key: str
    http_status: int
    details: Any
    status_text: str | None = None


class VendorError(Exception):
    """An error answer: raised anywhere, rendered by each API family's envelope."""

    def __init__(self, spec: ErrorSpec, details: Any) -> None:
        super().__init__(f"{spec.key}: {details}")
        self.spec = spec
        self.details = details

    @property
    def http_status(self) -> int:
        return self.spec.http_status

    @property
    def status_text(self) -> str:
        return self.spec.status_text or status_line(self.spec.http_status)


_FIELD = re.compile(r"\{([a-z_]+)\}")


def _fill(template: Any, values: dict[str, Any]) -> Any:
    # Only {name} fields are replaced: vendor texts may carry literal JSON braces.
    if isinstance(template, str):
        return _FIELD.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)
    if isinstance(template, dict):
        return {_fill(k, values): _fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, values) for v in template]
    return template


_ENTRIES: list[ErrorSpec] = [
    # Settings and metadata
    ErrorSpec("update_settings.400.invalid_json", 400, "Could not parse JSON body", "Invalid JSON"),
    # sandbox: the Registration Authority settings the sandbox reads (webhooks)
    ErrorSpec("update_settings.400.invalid_authorities", 400, "Invalid registration_authorities: {problem}"),
    # sandbox: a settings.ini section (tsa, request, billing, general) replaced by something that is not one
    ErrorSpec("update_settings.400.invalid_section", 400, "Invalid settings section '{section}': expected an object"),
    ErrorSpec("list_metadata.404.not_found", 404, "Metadata not found on disk"),
    ErrorSpec("upload_metadata.400.invalid_json", 400, "Could not parse JSON body", "400 Invalid JSON"),
    ErrorSpec("upload_metadata.400.missing_parameters", 400, "Missing required parameters"),
    ErrorSpec("get_metadata.404.not_found", 404, "Metadata not found on disk"),
    ErrorSpec("delete_metadata.404.not_found", 404, "Metadata not found on disk"),
    # Tokens
    ErrorSpec("create_token.400.missing_parameters", 400, "Missing required parameters: username, password, pin"),
    ErrorSpec("create_token.400.missing_parameter", 400, "Missing required parameter: '{name}'"),
    ErrorSpec("create_token.400.invalid_json", 400, "Could not parse JSON body - {error}"),
    ErrorSpec("create_token.400.token_exists", 400, "A token with these credentials already exist!"),
    ErrorSpec("create_token.404.rao_not_found", 404, "Error getting RAO's id. Make sure the credentials are correct."),
    ErrorSpec("get_token.400.missing_uid", 400, "Missing required parameter: no token uid specified"),
    ErrorSpec("get_token.404.not_found", 404, "Token {uid} not found"),
    ErrorSpec("delete_token.400.missing_uid", 400, "Missing required parameter: no token uid specified"),
    ErrorSpec("delete_token.404.not_found", 404, "Token not found"),
    # sandbox: the vendor says its default token "cannot be deleted" but shows no answer
    ErrorSpec("delete_token.403.protected", 403, "Token {uid} cannot be deleted"),
    # Create request
    ErrorSpec("create_request.400.invalid_json", 400, "Could not parse JSON body - {error}"),
    ErrorSpec("create_request.400.missing_phone", 400, "Missing parameter: mobile_phone_number required"),
    ErrorSpec("create_request.400.missing_prefix", 400, "Please use the mobile phone number with an international prefix"),
    ErrorSpec("create_request.400.invalid_email", 400, "Enter a valid email address"),
    ErrorSpec("create_request.400.environment_unavailable", 400, "The specified environment is not available"),
    ErrorSpec("create_request.400.missing_docs", 400, "Error occured during request approval: Missing required docs"),
    ErrorSpec(
        "create_request.400.invalid_id_document_type", 400,
        "The id_document_type specified is not valid. Valid options are IDC, PAS, PNO, TIN, CI, CE",
    ),
    ErrorSpec(
        "create_request.400.missing_env", 400,
        "Missing env parameter. Please set it in settings or specify it as parameter",
    ),
    ErrorSpec("create_request.400.unknown_environment", 400, "Environment {env} does not exist"),
    # sandbox: the vendor answers these with a 500; the field-keyed details are its own
    ErrorSpec("create_request.400.missing_email", 400, {"email": ["This field is required"]}),
    ErrorSpec("create_request.400.blank_email", 400, {"email": ["This field may not be blank"]}),
    ErrorSpec(
        "create_request.400.invalid_country", 400,
        {"id_document_country": ["'{value}' is not a valid ISO 3166-1 alpha-2 country code"]},
    ),
    # sandbox: no credentials at all (text of the approve operation's answer)
    # sandbox: a callback that is not an http(s) URL could never be delivered to
    ErrorSpec("create_request.400.invalid_callback", 400, "Invalid callback URL '{url}': expected http:// or https://"),
    ErrorSpec("create_request.400.missing_credentials", 400, "Missing required parameters: incomplete RAO's credentials"),
    ErrorSpec("create_request.403.invalid_rao", 403, "Invalid RAO Credentials"),
    ErrorSpec(
        "create_request.403.certificate_permission", 403,
        "You do not have permission to perform this action. Check your authentication certificates",
    ),
    ErrorSpec("create_request.403.profile_permission", 403, "You do not have permission to perform this action"),
    ErrorSpec("create_request.404.rao_not_found", 404, "Error getting RAO's id. Make sure the credentials are correct"),
    ErrorSpec(
        "create_request.412.invalid_fields", 412,
        "Error occured during request approval: Invalid request fields: {fields}",
    ),
    ErrorSpec(
        "create_request.500.billing_credit", 500,
        "Cannot check the remaining credit for the billing user. Please check the credentials",
    ),
    ErrorSpec(
        "create_request.500.billing_base64", 500,
        "Billing credentials not valid. Please check if they are base64 encoded",
    ),
    ErrorSpec("create_request.500.email_missing", 500, {"email": ["This field is required"]}),
    ErrorSpec("create_request.500.email_blank", 500, {"email": ["This field may not be blank"]}),
    ErrorSpec("create_request.500.email_invalid", 500, {"email": ["Enter a valid email address"]}),
    ErrorSpec(
        "create_request.500.invalid_country", 500,
        {"id_document_country": ["'{value}' is not a valid ISO 3166-1 alpha-2 country code"]},
    ),
    ErrorSpec(
        "create_request.500.auth_certificates", 500,
        "Configuration error: Please check the certificates path for the environment selected",
    ),
    # Get request, async status
    ErrorSpec("get_request.404.not_found", 404, "Request not found. Make sure the upload directory is correct."),
    ErrorSpec("async_status.404.not_found", 404, "Request {pk} not found. Make sure the upload directory is correct"),
    # OTP
    ErrorSpec("generate_otp.400.missing_pk", 400, "Missing parameters: Request's pk not specified"),
    # sandbox: the vendor documents only sms and whatsapp
    ErrorSpec(
        "generate_otp.400.invalid_delivery_method", 400,
        "Invalid delivery_method '{value}'. Valid options are sms, whatsapp",
    ),
    ErrorSpec("generate_otp.404.not_found", 404, "Request {pk} not found. Cannot send OTP secret"),
    ErrorSpec("generate_otp.412.too_soon", 412, "Error occured during OTP generation: Otp generated less than a minute ago"),
    ErrorSpec("generate_otp.412.invalid_status", 412, "Error occured during OTP generation: Invalid request status"),
    # Sign
    ErrorSpec("sign.400.invalid_json", 400, "Could not parse JSON body - {error}"),
    ErrorSpec("sign.400.missing_parameter", 400, "Missing required parameter: '{name}'"),
    ErrorSpec("sign.400.missing_image_parameters", 400, {}),
    # sandbox: options the vendor documents no answer for (bad position, page out of range)
    ErrorSpec("sign.400.invalid_options", 400, {}),
    # sandbox: documents the signer refuses (encrypted, certified, broken), by uid
    ErrorSpec("sign.400.documents_refused", 400, {}),
    ErrorSpec("sign.403.countersignature_credentials", 403, "Invalid countersignature credentials"),
    ErrorSpec("sign.403.invalid_otp", 403, "Confirmation Code invalid"),
    ErrorSpec(
        "sign.404.documents_missing", 404,
        "The following documents are not found in Request's folders: {uids}",
    ),
    ErrorSpec("sign.404.image_missing", 404, {}),
    ErrorSpec("sign.404.metadata_missing", 404, "Metadata not found on disk"),
    ErrorSpec("sign.404.not_found", 404, "Request {pk} not found. Cannot sign documents"),
    ErrorSpec("sign.412.already_issued", 412, "Request already in ISSUED status"),
    # sandbox: the vendor documents no 500 for sign; this is its signing backend failing (scenarios, magic values)
    ErrorSpec("sign.500.signing_service", 500, "Error occured during signature process: signing service unavailable"),
    # sandbox: a second sign call while an asynchronous one is still signing
    ErrorSpec("sign.412.in_progress", 412, "Request {pk} is already being signed"),
    # sandbox: signing a request that is not approved yet, or cancelled
    ErrorSpec("sign.412.invalid_status", 412, "Request in {status} status cannot be signed"),
    # Documents
    ErrorSpec("upload_document.400.missing_pk", 400, "Missing required parameters: Request's pk not specified"),
    ErrorSpec("upload_document.400.max_documents", 400, "Maximum number of document reached for Request {pk}"),
    # sandbox: no file part at all, and PDFs the signer could never sign
    ErrorSpec("upload_document.400.missing_file", 400, "Missing required parameter: 'file'"),
    ErrorSpec("upload_document.400.unsignable", 400, "Document {filename} cannot be signed: {reason}"),
    ErrorSpec("upload_document.400.invalid_hashfile", 400, "Invalid hashfile {filename}: {problem}"),
    ErrorSpec("upload_document.404.not_found", 404, "Cannot upload document: Request {pk} not found on disk"),
    # sandbox: documents added after signing would never be signed
    ErrorSpec("upload_document.412.already_issued", 412, "Request already in ISSUED status"),
    ErrorSpec("upload_document.412.signing", 412, "Request {pk} is already being signed"),
    ErrorSpec("upload_document.413.too_large", 413, "File {filename} exceeds the upload limit of {limit} bytes"),
    ErrorSpec("upload_document.415.unsupported", 415, "Unsupported file type: {type}"),
    ErrorSpec("retrieve_document.404.not_found", 404, "Document not found"),
    ErrorSpec("delete_document.400.missing_parameters", 400, "Missing required parameters"),
    ErrorSpec("delete_document.404.not_found", 404, "Document not found with uid {uid} and type {type}"),
    ErrorSpec("list_documents.400.missing_pk", 400, "Missing required parameters: Request's pk not specified"),
    ErrorSpec("list_documents.404.not_found", 404, "No documents found for specified Request"),
    ErrorSpec("delete_all_documents.400.missing_pk", 400, "Missing required parameters: Request's pk not specified"),
    ErrorSpec("delete_all_documents.404.not_found", 404, "No documents found for specified Request"),
    ErrorSpec("retrieve_contract.404.not_found", 404, "Request {pk} not found"),
    # Images
    ErrorSpec("upload_image.400.missing_image", 400, "Missing required parameter: 'image'"),
    ErrorSpec("upload_image.413.too_large", 413, "File {filename} exceeds the upload limit of {limit} bytes"),
    ErrorSpec("upload_image.415.unsupported", 415, "Image file type not supported: {type}"),
    # The sandbox's own: the vendor documents no pixel limit.
    ErrorSpec("upload_image.413.too_many_pixels", 413,
              "Image {filename} declares {size} pixels; the sandbox takes at most {limit}"),
    ErrorSpec("retrieve_image.400.missing_uid", 400, "Missing required parameters: Image uid not specified"),
    ErrorSpec("retrieve_image.404.not_found", 404, "Image with uid {uid} not found"),
    ErrorSpec("delete_image.400.missing_uid", 400, "Missing required parameters: No image uid specified"),
    ErrorSpec("delete_image.404.not_found", 404, "Image with uid {uid} not found on disk"),
    # VideoID
    ErrorSpec("create_videoid.400.videoid_disabled", 400, "Videoid not enabled for Registration Authority {ra}"),
    ErrorSpec("create_videoid.400.missing_parameters", 400, "Missing required parameters"),
    ErrorSpec(
        "create_videoid.403.permission", 403,
        'Error creating new videoid request: {"detail":"You do not have permission to perform this action."}',
    ),
    ErrorSpec("create_videoid.404.ra_not_found", 404, "Registration Authority not found"),
    ErrorSpec("upload_data.400.invalid_json", 400, "Could not parse JSON body - {error}", "Invalid JSON"),
    ErrorSpec("upload_data.404.not_found", 404, "Request not found"),
    # sandbox: evidences belong to external-mode requests waiting for identification
    ErrorSpec("upload_data.412.invalid_status", 412, "Videoid evidences cannot be uploaded for a request in {status} status"),
    ErrorSpec("upload_video.404.not_found", 404, "Request not found"),
    ErrorSpec("upload_video.400.missing_video", 400, "Missing required parameter: 'video'"),
    ErrorSpec("upload_video.412.invalid_status", 412, "Videoid video cannot be uploaded for a request in {status} status"),
    ErrorSpec("download_video.404.not_found", 404, "Request not found"),
    ErrorSpec("download_video.404.no_video", 404, "No video uploaded for Request {pk}"),
    ErrorSpec("refuse_request.400.invalid_json", 400, "Could not parse JSON body - {error}", "Invalid JSON"),
    ErrorSpec("refuse_request.400.missing_credentials", 400, "Missing required parameters: incomplete RAO's credentials"),
    ErrorSpec("refuse_request.400.missing_reason", 400, "No reason specified"),
    ErrorSpec("refuse_request.403.invalid_rao", 403, "Invalid RAO credentials"),
    ErrorSpec("refuse_request.404.not_found", 404, "Request {pk} not found"),
    ErrorSpec("refuse_request.412.invalid_status", 412, "Request in {status} status cannot be refused"),
    ErrorSpec("approve_request.400.invalid_json", 400, "Could not parse JSON body - {error}", "Invalid JSON"),
    ErrorSpec("approve_request.400.missing_credentials", 400, "Missing required parameters: incomplete RAO's credentials"),
    ErrorSpec("approve_request.403.invalid_rao", 403, "Invalid RAO credentials"),
    ErrorSpec("approve_request.404.not_found", 404, "Request {pk} not found"),
    ErrorSpec("approve_request.412.invalid_status", 412, "Request in {status} status cannot be approved"),
    ErrorSpec("approve_request.412.not_validated", 412, "Request {pk} must be validated before approval (two-step mode)"),
    ErrorSpec("approve_request.412.identity_incomplete", 412, "Request {pk} lacks identity data: {fields}"),
    ErrorSpec("validate_request.400.invalid_json", 400, "Could not parse JSON body - {error}", "Invalid JSON"),
    ErrorSpec("validate_request.400.missing_credentials", 400, "Missing required parameters: incomplete RAO's credentials"),
    ErrorSpec("validate_request.403.invalid_rao", 403, "Invalid RAO credentials"),
    ErrorSpec("validate_request.404.not_found", 404, "Request {pk} not found"),
    ErrorSpec("validate_request.412.invalid_status", 412, "Request in {status} status cannot be validated"),
    ErrorSpec("cancel_request.404.not_found", 404, "Request {pk} not found"),
    ErrorSpec("cancel_request.412.invalid_status", 412, "Request in {status} status cannot be cancelled"),
    ErrorSpec("update_request.400.invalid_json", 400, "Could not parse JSON body - {error}", "Invalid JSON"),
    ErrorSpec("update_request.400.missing_parameters", 400, "Missing required parameters: {fields}"),
    ErrorSpec("update_request.400.scratchcard_mismatch", 400, "Scratchcard does not match Request {pk}"),
    ErrorSpec("update_request.404.not_found", 404, "Request {pk} not found"),
    ErrorSpec("update_request.412.invalid_status", 412, "Request in {status} status cannot be updated"),
    # sandbox: the identification outcome (link page, control API) in a status that has none
    ErrorSpec("identify.412.invalid_status", 412, "Request in {status} status: identification cannot be marked {outcome}"),
    # sandbox: transport-level answers, in the envelope of the API family asked
    ErrorSpec("api.400.malformed_body", 400, "Could not parse request body: {error}"),
    ErrorSpec("api.400.malformed_http", 400, "Malformed HTTP request: {error}"),
    ErrorSpec("api.400.bad_namespace", 400, "{reason}"),
    ErrorSpec("api.404.unknown_route", 404, "Not found: {method} {path}"),
    ErrorSpec("api.405.method_not_allowed", 405, "Method {method} not allowed on {path}"),
    ErrorSpec("api.408.body_timeout", 408, "Request body not received: no data for {seconds} seconds"),
    ErrorSpec("api.408.body_deadline", 408, "Request body not received within {seconds} seconds"),
    ErrorSpec("api.413.body_too_large", 413, "Request body exceeds the limit of {limit} bytes"),
    ErrorSpec("api.413.too_many_parts", 413, "Request body has more than {limit} parts"),
    ErrorSpec("api.500.not_stored", 500,
              "The change could not be stored in the data dir ({error}); it is not acknowledged"),
    ErrorSpec("api.500.internal", 500, "Internal sandbox error (reference {reference}); see the sandbox log"),
]

CATALOGUE: dict[str, ErrorSpec] = {entry.key: entry for entry in _ENTRIES}


def vendor_error(key: str, details: Any = None, **values: Any) -> VendorError:
    """The catalogue entry ``key`` as an exception; ``details`` replaces the template
    for entries whose details are per-document mappings."""
    spec = CATALOGUE[key]
    return VendorError(spec, details if details is not None else _fill(spec.details, values))


def markdown_table() -> str:
    """The catalogue as the table of docs/scenarios.md."""
    rows = ["| key | HTTP | details |", "|---|---|---|"]
    for spec in CATALOGUE.values():
        details = spec.details if isinstance(spec.details, str) else (
            "(per-document object)" if spec.details == {} else str(spec.details))
        details = details.replace("|", "\\|")
        rows.append(f"| `{spec.key}` | {spec.http_status} | {details} |")
    return "\n".join(rows)
