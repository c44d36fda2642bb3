// Mirrors migrations/; both backends map these types the same way.

diesel::table! {
    tenants (id) {
        id -> Text,
        name -> Text,
        created_at -> BigInt,
        reject_unknown_event_types -> Nullable<Bool>,
        publish_rule_version -> BigInt,
        endpoints_version -> BigInt,
    }
}

diesel::table! {
    api_keys (key_hash) {
        key_hash -> Text,
        tenant_id -> Nullable<Text>,
        created_at -> BigInt,
        id -> Text,
        name -> Nullable<Text>,
        prefix -> Nullable<Text>,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    endpoints (id) {
        id -> Text,
        tenant_id -> Text,
        url -> Text,
        description -> Text,
        event_types -> Text,
        headers -> Text,
        secret -> Text,
        timeout_seconds -> Integer,
        max_in_flight -> Integer,
        retry_schedule -> Text,
        status -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        breaker_failures -> Nullable<Integer>,
        breaker_cooldown_seconds -> Nullable<BigInt>,
        breaker_max_cooldown_seconds -> Nullable<BigInt>,
        alert_thresholds -> Nullable<Text>,
        disable_after_failures -> Nullable<Integer>,
        disable_after_seconds -> Nullable<BigInt>,
        disabled_at -> Nullable<BigInt>,
        disabled_reason -> Nullable<Text>,
        signature_scheme -> Text,
        signature_header -> Text,
        signature_sha256_prefix -> Bool,
        http_method -> Text,
        retry_client_errors -> Bool,
        metadata -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<BigInt>,
        backlog_move -> Nullable<Text>,
        backlog_move_due_at -> Nullable<BigInt>,
        rate_limit -> Nullable<Integer>,
        ordered -> Bool,
        secret_headers -> Text,
    }
}

diesel::table! {
    endpoint_health (endpoint_id) {
        endpoint_id -> Text,
        consecutive_failures -> Integer,
        failing_since -> Nullable<BigInt>,
        alerted_thresholds -> Text,
        circuit_state -> Text,
        circuit_opened_at -> Nullable<BigInt>,
        circuit_next_probe_at -> Nullable<BigInt>,
        circuit_cooldown_ms -> BigInt,
        updated_at -> BigInt,
        alert_raised -> Bool,
    }
}

diesel::table! {
    alerts (id) {
        id -> Text,
        tenant_id -> Text,
        endpoint_id -> Text,
        endpoint_url -> Text,
        kind -> Text,
        consecutive_failures -> Integer,
        failing_since -> Nullable<BigInt>,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        disabled_reason -> Nullable<Text>,
        created_at -> BigInt,
        dispatched_at -> Nullable<BigInt>,
        threshold -> Nullable<Integer>,
    }
}

diesel::table! {
    events (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        event_type -> Text,
        body -> Text,
        idempotency_key -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    deliveries (id) {
        id -> Text,
        tenant_id -> Text,
        event_id -> Text,
        endpoint_id -> Text,
        state -> Text,
        attempt_count -> Integer,
        next_attempt_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        seq -> BigInt,
    }
}

diesel::table! {
    attempts (id) {
        id -> Text,
        delivery_id -> Text,
        attempt -> Integer,
        started_at -> BigInt,
        duration_ms -> BigInt,
        status_code -> Nullable<Integer>,
        response_headers -> Nullable<Text>,
        response_body -> Nullable<Text>,
        error_kind -> Nullable<Text>,
        error_message -> Nullable<Text>,
        endpoint_id -> Nullable<Text>,
        instance -> Nullable<Text>,
    }
}

diesel::table! {
    event_types (tenant_id, name) {
        tenant_id -> Text,
        name -> Text,
        description -> Text,
        json_schema -> Nullable<Text>,
        archived_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    backlog_move_cursors (endpoint_id) {
        endpoint_id -> Text,
        after_created_at -> BigInt,
        after_id -> Text,
    }
}

diesel::table! {
    instances (id) {
        id -> Text,
        started_at -> BigInt,
        heartbeat_at -> BigInt,
        key_check -> Text,
    }
}

diesel::table! {
    endpoint_leases (endpoint_id) {
        endpoint_id -> Text,
        owner -> Text,
        epoch -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    endpoint_commands (id) {
        id -> Text,
        endpoint_id -> Text,
        command -> Text,
        created_at -> BigInt,
        taken_at -> Nullable<BigInt>,
        answer -> Nullable<Text>,
        answered_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(attempts -> deliveries (delivery_id));
diesel::joinable!(endpoints -> tenants (tenant_id));

diesel::allow_tables_to_appear_in_same_query!(
    tenants,
    api_keys,
    endpoints,
    endpoint_health,
    events,
    deliveries,
    attempts,
    alerts,
    event_types,
    backlog_move_cursors,
    instances,
    endpoint_leases,
    endpoint_commands,
);
