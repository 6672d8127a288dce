// The filter editor of the create screen: field, operator and values, with value suggestions
// from the media server (requestFilters / requestFilterValues).

import { h, icon } from "./dom.js";
import { t } from "./i18n.js";

// Well-known fields and operators get translated labels; anything else shows the server's title.
const FIELD_LABELS = {
  genre: "FILTER_GENRE",
  year: "FILTER_YEAR",
  decade: "FILTER_DECADE",
  duration: "FILTER_DURATION",
  rating: "FILTER_RATING",
  audienceRating: "FILTER_RATING",
  contentRating: "FILTER_CONTENT_RATING",
  director: "FILTER_DIRECTOR",
  actor: "FILTER_ACTOR",
  studio: "FILTER_STUDIO",
  country: "FILTER_COUNTRY",
  collection: "FILTER_COLLECTION",
  label: "FILTER_LABEL",
  unwatched: "FILTER_UNWATCHED",
  resolution: "FILTER_RESOLUTION",
};
const OPERATOR_LABELS = {
  is: "FILTER_IS",
  "is not": "FILTER_IS_NOT",
  "is at least": "FILTER_AT_LEAST",
  "is at most": "FILTER_AT_MOST",
  contains: "FILTER_CONTAINS",
  "does not contain": "FILTER_NOT_CONTAINS",
  "begins with": "FILTER_BEGINS_WITH",
  "ends with": "FILTER_ENDS_WITH",
  "is greater than": "FILTER_GREATER_THAN",
  "is less than": "FILTER_LESS_THAN",
  "is before": "FILTER_BEFORE",
  "is after": "FILTER_AFTER",
};

const fieldLabel = (field) => (FIELD_LABELS[field.key] ? t(FIELD_LABELS[field.key]) : field.title);
const operatorLabel = (operator) => {
  const key = OPERATOR_LABELS[operator.title?.toLowerCase()];
  return key ? t(key) : operator.title;
};

let rowCount = 0;

/**
 * One filter row. catalogue: the requestFilters payload; values(key): Promise of FilterValue[].
 * Returns {element, read()} where read() gives a Filter or null when it has no value.
 */
export function filterRow(catalogue, values, onRemove) {
  const id = `filter-${++rowCount}`;
  const fields = catalogue.filters;
  const field = h(
    "select",
    { id: `${id}-field`, "aria-label": t("FILTER_FIELD") },
    fields.map((entry) => h("option", { value: entry.key }, fieldLabel(entry))),
  );
  const operator = h("select", { id: `${id}-operator`, "aria-label": t("FILTER_OPERATOR") });
  const suggestions = h("datalist", { id: `${id}-suggestions` });
  const input = h("input", {
    id: `${id}-value`,
    list: `${id}-suggestions`,
    autocomplete: "off",
    enterkeyhint: "done",
    "aria-label": t("FILTER_VALUE"),
    placeholder: t("FILTER_VALUE_PLACEHOLDER"),
  });
  const chips = h("ul", { class: "chips chips--removable", "aria-label": t("FILTER_CHOSEN_VALUES") });
  const chosen = []; // [{title, value}]
  let known = [];

  const current = () => fields.find((entry) => entry.key === field.value) ?? fields[0];
  const multiple = () => !["integer", "boolean"].includes(current()?.type);

  function renderOperators() {
    const type = current()?.type;
    operator.replaceChildren(
      ...(catalogue.filterTypes[type] ?? []).map((entry) => h("option", { value: entry.key }, operatorLabel(entry))),
    );
  }

  async function loadValues() {
    const key = field.value;
    known = [];
    suggestions.replaceChildren();
    try {
      const list = await values(key);
      if (field.value !== key) return;
      known = list;
      suggestions.replaceChildren(...list.slice(0, 500).map((entry) => h("option", { value: entry.title })));
    } catch {
      // No suggestions: free text still works.
    }
  }

  function renderChips() {
    chips.replaceChildren(
      ...chosen.map((entry, index) =>
        h(
          "li",
          { class: "chip chip--removable" },
          h("span", {}, entry.title),
          h(
            "button",
            {
              type: "button",
              class: "chip__remove",
              "aria-label": t("REMOVE_VALUE", { value: entry.title }),
              onclick: () => {
                chosen.splice(index, 1);
                renderChips();
                input.focus();
              },
            },
            icon("x", "icon icon--small"),
          ),
        ),
      ),
    );
    chips.hidden = chosen.length === 0;
  }

  /** Turn the typed text into a chosen value (matching a suggestion's title when there is one). */
  function commit() {
    const text = input.value.trim();
    if (!text) return false;
    const match = known.find((entry) => entry.title.toLowerCase() === text.toLowerCase());
    const entry = match ?? { title: text, value: text };
    if (!multiple()) chosen.length = 0;
    if (!chosen.some((existing) => existing.value === entry.value)) chosen.push(entry);
    input.value = "";
    renderChips();
    return true;
  }

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      commit();
    }
  });
  // Picking a suggestion from the list fires `input` with the whole title.
  input.addEventListener("input", (event) => {
    if (event.inputType === "insertReplacementText" || event.inputType === undefined) {
      if (known.some((entry) => entry.title === input.value)) commit();
    }
  });
  field.addEventListener("change", () => {
    chosen.length = 0;
    renderChips();
    renderOperators();
    loadValues();
  });

  const remove = h(
    "button",
    { type: "button", class: "icon-button filter__remove", "aria-label": t("REMOVE_FILTER"), title: t("REMOVE_FILTER") },
    icon("trash"),
  );
  const element = h(
    "li",
    { class: "filter" },
    h("div", { class: "filter__head" }, field, operator, remove),
    h(
      "div",
      { class: "filter__value" },
      input,
      suggestions,
      h(
        "button",
        {
          type: "button",
          class: "icon-button filter__add",
          "aria-label": t("ADD_VALUE"),
          title: t("ADD_VALUE"),
          onclick: () => commit() && input.focus(),
        },
        icon("plus"),
      ),
    ),
    chips,
  );
  remove.addEventListener("click", () => onRemove(element));
  renderOperators();
  renderChips();
  loadValues();

  return {
    element,
    focus: () => field.focus(),
    read() {
      commit();
      if (!chosen.length) return null;
      return { key: field.value, operator: operator.value, value: chosen.map((entry) => entry.value) };
    },
  };
}
