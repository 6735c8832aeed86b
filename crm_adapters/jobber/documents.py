"""Every GraphQL document the Jobber adapter can send, one named operation each.

The tests validate each of these against Jobber's schema (``tests/fixtures/jobber/``) with
graphql-core, and the fake Jobber backend executes them against the same schema, so a field that
Jobber does not have fails in CI rather than in a customer's account.

Connections always carry a small ``first``: Jobber prices a connection at ``first`` times the
fields selected and assumes 100 when ``first`` is missing.
https://developer.getjobber.com/docs/using_jobbers_api/api_rate_limits#connection-fields
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: Find clients by phone. ``searchTerm`` is Jobber's fuzzy client search, so the adapter compares
#: the returned ``phones`` itself (after E.164 normalisation) and only trusts exact matches.
CLIENTS_BY_PHONE = """
query ClientsByPhone($searchTerm: String!, $first: Int!) {
  clients(searchTerm: $searchTerm, first: $first) {
    nodes {
      id
      firstName
      lastName
      createdAt
      phones {
        number
      }
    }
  }
}
"""

#: Create the caller as a client; ``input.phones`` carries the number as a texting-capable mobile.
CLIENT_CREATE = """
mutation ClientCreate($input: ClientCreateInput!) {
  clientCreate(input: $input) {
    client {
      id
      firstName
      lastName
    }
    userErrors {
      message
      path
    }
  }
}
"""

#: One note on the client (the missed call, one text); ``input.linkedTo.requests`` shows it on the
#: client's requests too.
CLIENT_NOTE_CREATE = """
mutation ClientNoteCreate($clientId: EncodedId!, $input: ClientCreateNoteInput!) {
  clientCreateNote(clientId: $clientId, input: $input) {
    clientNote {
      id
    }
    userErrors {
      message
      path
    }
  }
}
"""

#: The client's newest notes, to find the one an earlier ``clientCreateNote`` made (a retry after
#: a lost answer). Unsorted, ``Client.notes`` lists the oldest first. The sort is written as the
#: pinned version takes it (``NotesSortInput``, ``key:``); the 2022-03-10 dump still has
#: ``ClientNotesSortAttributes`` (``field:``), which Jobber replaced in 2022-05-23 (see
#: ``schema_patch.py`` in the Jobber fixtures). ``client`` is null for a client that is gone or in
#: another account.
CLIENT_NOTES = """
query ClientNotes($clientId: EncodedId!, $first: Int!) {
  client(id: $clientId) {
    id
    notes(first: $first, sort: [{key: CREATED_AT, direction: DESCENDING}]) {
      nodes {
        id
        message
      }
    }
  }
}
"""

#: Is the request we made earlier still open, and is it still this client's?
REQUEST_STATUS = """
query RequestStatus($id: EncodedId!) {
  request(id: $id) {
    id
    requestStatus
    client {
      id
    }
  }
}
"""

#: The client's requests, to find one an earlier ``requestCreate`` made (a retry after a lost
#: answer). ``Query.requests`` lists the account's most recently updated requests first and takes
#: a client filter; ``Client.requests`` has no documented order, so a page of it could miss the
#: new one. The filter takes one status, not a set, so the adapter judges openness itself.
CLIENT_REQUESTS = """
query ClientRequests($clientId: EncodedId!, $first: Int!) {
  requests(filter: {clientId: $clientId}, first: $first) {
    nodes {
      id
      title
      requestStatus
      createdAt
      client {
        id
      }
    }
  }
}
"""

#: A new request (Jobber's lead) for the client.
REQUEST_CREATE = """
mutation RequestCreate($input: RequestCreateInput!) {
  requestCreate(input: $input) {
    request {
      id
      requestStatus
    }
    userErrors {
      message
      path
    }
  }
}
"""

#: The follow-up as a task for a team member.
TASK_CREATE = """
mutation TaskCreate($clientId: EncodedId, $input: TaskCreateInput!) {
  taskCreate(clientId: $clientId, input: $input) {
    task {
      id
    }
    userErrors {
      message
      path
    }
  }
}
"""

TASK_INSTRUCTIONS = """
query TaskInstructions($id: EncodedId!) {
  task(id: $id) {
    id
    instructions
  }
}
"""

TASK_EDIT = """
mutation TaskEdit($taskId: EncodedId!, $input: TaskEditInput!) {
  taskEdit(taskId: $taskId, input: $input) {
    task {
      id
    }
    userErrors {
      message
      path
    }
  }
}
"""

#: The follow-up as an assessment on the request, for accounts that schedule site visits.
ASSESSMENT_CREATE = """
mutation AssessmentCreate($requestId: EncodedId!, $input: AssessmentCreateInput!) {
  assessmentCreate(requestId: $requestId, input: $input) {
    assessment {
      id
    }
    userErrors {
      message
      path
    }
  }
}
"""

#: The tasks scheduled at one moment, to find the one an earlier ``taskCreate`` made (a retry
#: after a lost answer). Tasks cannot be searched by their text or listed by client, but
#: ``scheduledItems`` lists the items whose schedule overlaps ``filter.occursWithin`` (narrowed to
#: ``scheduleItemType: BASIC_TASK`` and, when the task has an owner, ``assignedTo``). Its nodes
#: are ``ScheduledItemInterface``: ``id`` is selected on the interface (every scheduled item has
#: one), the task's own fields in ``... on Task``. ``client`` is null for a task on no client.
SCHEDULED_TASKS = """
query ScheduledTasks($filter: ScheduledItemsFilterAttributes!, $first: Int!, $after: String) {
  scheduledItems(filter: $filter, first: $first, after: $after) {
    nodes {
      id
      ... on Task {
        instructions
        client {
          id
        }
      }
    }
    pageInfo {
      hasNextPage
      endCursor
    }
  }
}
"""

#: The request's assessment (a request has at most one), to find the one an earlier
#: ``assessmentCreate`` made. ``request`` is null for a request that is gone or in another
#: account, ``assessment`` for a request without one.
REQUEST_ASSESSMENT = """
query RequestAssessment($requestId: EncodedId!) {
  request(id: $requestId) {
    id
    assessment {
      id
      instructions
    }
  }
}
"""

#: Whether a rep marked the follow-up done: a completed task is a human response.
TASK_DONE = """
query TaskDone($id: EncodedId!) {
  task(id: $id) {
    id
    isComplete
  }
}
"""

ASSESSMENT_DONE = """
query AssessmentDone($id: EncodedId!) {
  assessment(id: $id) {
    id
    isComplete
  }
}
"""

ASSESSMENT_INSTRUCTIONS = """
query AssessmentInstructions($id: EncodedId!) {
  assessment(id: $id) {
    id
    instructions
  }
}
"""

ASSESSMENT_EDIT = """
mutation AssessmentEdit($assessmentId: EncodedId!, $input: AssessmentEditInput!) {
  assessmentEdit(assessmentId: $assessmentId, input: $input) {
    assessment {
      id
    }
    userErrors {
      message
      path
    }
  }
}
"""

#: Active team members, for the setup page's "who gets the follow-up" choice.
USERS = """
query Users($first: Int!, $after: String) {
  users(filter: {status: ACTIVATED}, first: $first, after: $after) {
    nodes {
      id
      name {
        full
      }
      email {
        raw
      }
      isAccountAdmin
    }
    pageInfo {
      hasNextPage
      endCursor
    }
  }
}
"""

#: The connected account; works with any scopes. Its ``id`` is the ``accountId`` of webhooks.
#: https://developer.getjobber.com/docs/building_your_app/app_lifecycle
ACCOUNT = """
query Account {
  account {
    id
    name
  }
}
"""

#: Uninstall from our side: Jobber invalidates the tokens and shows the app as disconnected.
#: https://developer.getjobber.com/docs/building_your_app/app_authorization#handling-app-disconnects
APP_DISCONNECT = """
mutation AppDisconnect {
  appDisconnect {
    app {
      name
    }
    userErrors {
      message
      path
    }
  }
}
"""

#: One client, to prove the connection reads records (the setup page's "test connection").
FIRST_CLIENT = """
query FirstClient {
  clients(first: 1) {
    nodes {
      id
    }
  }
}
"""

#: Operation name -> document, for the schema tests and the fake backend.
DOCUMENTS: Mapping[str, str] = MappingProxyType(
    {
        "ClientsByPhone": CLIENTS_BY_PHONE,
        "ClientCreate": CLIENT_CREATE,
        "ClientNoteCreate": CLIENT_NOTE_CREATE,
        "ClientNotes": CLIENT_NOTES,
        "RequestStatus": REQUEST_STATUS,
        "ClientRequests": CLIENT_REQUESTS,
        "RequestCreate": REQUEST_CREATE,
        "TaskCreate": TASK_CREATE,
        "TaskInstructions": TASK_INSTRUCTIONS,
        "TaskEdit": TASK_EDIT,
        "ScheduledTasks": SCHEDULED_TASKS,
        "AssessmentCreate": ASSESSMENT_CREATE,
        "AssessmentInstructions": ASSESSMENT_INSTRUCTIONS,
        "TaskDone": TASK_DONE,
        "AssessmentDone": ASSESSMENT_DONE,
        "AssessmentEdit": ASSESSMENT_EDIT,
        "RequestAssessment": REQUEST_ASSESSMENT,
        "Users": USERS,
        "Account": ACCOUNT,
        "FirstClient": FIRST_CLIENT,
        "AppDisconnect": APP_DISCONNECT,
    }
)

#: Operations that change data: a lost answer to one of these is ambiguous.
MUTATIONS = frozenset(name for name, doc in DOCUMENTS.items() if doc.lstrip().startswith("mutation"))


def operation_name(document: str) -> str:
    """The operation name of one of :data:`DOCUMENTS` (``"query Users(...)"`` -> ``"Users"``)."""
    head = document.lstrip().split("{", 1)[0]
    return head.split(None, 1)[1].split("(", 1)[0].strip()
